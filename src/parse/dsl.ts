/**
 * The `.qr` front end: lex, parse (with error recovery, so one run reports
 * every syntax error), build the syntax tree, read imports and lower to the
 * shared RecipeDocument.
 */
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { IRecognitionException, IToken, Lexer as LexerType } from 'chevrotain';
import { Lexer } from '../../grammar/chevrotain.js';
import { recipeParser } from '../../grammar/parser.js';
import { allTokens } from '../../grammar/tokens.js';
import { error, type Diagnostic, type Result } from '../diagnostics.js';
import { isDiagnostic, type SourceHost } from '../source-host.js';
import type { Source, Span } from '../source.js';
import type { ParsedRecipe } from './document.js';
import { lowerSyntax, type Scope } from './dsl-lower.js';
import type { CommentSyntax, FileSyntax } from './dsl-syntax.js';
import { syntaxOf } from './index.js';
import { cstToSyntax } from './dsl-visitor.js';

/** A file's syntax tree with its comments, or nothing when it has syntax errors. */
export interface ParsedSyntax {
  readonly file?: FileSyntax;
  readonly comments: readonly CommentSyntax[];
}

let lexer: LexerType | undefined;
let safeLexer: LexerType | undefined;

/**
 * Chevrotain's first-character optimization costs tens of milliseconds to
 * set up, more than lexing a recipe of ordinary size takes without it; only
 * large files get the optimized lexer.
 */
const OPTIMIZED_LEXER_FROM = 64 * 1024;

function lexerFor(text: string): LexerType {
  if (text.length >= OPTIMIZED_LEXER_FROM) return (lexer ??= new Lexer([...allTokens], { positionTracking: 'onlyOffset', skipValidations: true }));
  return (safeLexer ??= new Lexer([...allTokens], { positionTracking: 'onlyOffset', skipValidations: true, safeMode: true }));
}

/** Lexes and parses one file into its syntax tree; syntax errors become `syntax-error` diagnostics. */
export function parseDslSyntax(source: Source): Result<ParsedSyntax> {
  const lexed = lexerFor(source.text).tokenize(source.text);
  const diagnostics: Diagnostic[] = lexed.errors.map((e) =>
    error('syntax-error', `Unexpected character "${source.text.slice(e.offset, e.offset + 1)}".`, {
      path: source.path,
      start: e.offset,
      end: e.offset + Math.max(1, e.length),
    }),
  );
  const comments = (lexed.groups.comments ?? []).map((t: IToken) => ({
    text: t.image.replace(/\s+$/, ''),
    span: { path: source.path, start: t.startOffset, end: t.startOffset + t.image.length },
  }));
  const parser = recipeParser();
  parser.input = lexed.tokens;
  const cst = parser.recipeFile();
  for (const e of parser.errors) diagnostics.push(syntaxError(e, source));
  if (diagnostics.length > 0) {
    diagnostics.sort((a, b) => a.span!.start - b.span!.start);
    return { value: { comments }, diagnostics };
  }
  return { value: { file: cstToSyntax(cst, source.path), comments }, diagnostics };
}

function syntaxError(e: IRecognitionException, source: Source): Diagnostic {
  const t = e.token;
  const at: Span = Number.isFinite(t.startOffset)
    ? { path: source.path, start: t.startOffset, end: t.startOffset + t.image.length }
    : { path: source.path, start: source.text.length, end: source.text.length };
  return error('syntax-error', e.message, at);
}

interface ImportContext {
  readonly host: SourceHost;
  readonly sources: Map<string, string>;
  /** Exports of files already read, by resolved path. */
  readonly done: Map<string, Scope>;
  /** The files being read, outermost first: resolved path (identity) and display path. */
  readonly stack: { key: string; path: string }[];
  readonly diagnostics: Diagnostic[];
}

/**
 * Parses a `.qr` recipe and the files it imports into the shared document.
 * Imported files are read through `host`, relative to the importing file.
 */
export function parseDsl(source: Source, host: SourceHost): Result<ParsedRecipe> {
  const ctx: ImportContext = { host, sources: new Map([[source.path, source.text]]), done: new Map(), stack: [{ key: resolve(source.path), path: source.path }], diagnostics: [] };
  const parsed = parseDslSyntax(source);
  ctx.diagnostics.push(...parsed.diagnostics);
  const file = parsed.value.file;
  if (!file) return { value: { document: { stages: [] }, spans: new Map(), sources: ctx.sources }, diagnostics: ctx.diagnostics };
  const imported = readImports(file, source.path, ctx);
  const lowered = lowerSyntax(file, imported, false);
  ctx.diagnostics.push(...lowered.diagnostics);
  return { value: { document: lowered.document, spans: lowered.spans, sources: ctx.sources }, diagnostics: ctx.diagnostics };
}

/** Reads every `import` of `file` and returns the bindings they make visible. */
function readImports(file: FileSyntax, path: string, ctx: ImportContext): Scope {
  const scope: Scope = new Map();
  for (const item of file.items) {
    if (item.kind !== 'import') continue;
    const target = isAbsolute(item.path.value) ? item.path.value : join(dirname(path), item.path.value);
    const key = resolve(target);
    const open = ctx.stack.findIndex((f) => f.key === key);
    if (open >= 0) {
      const chain = [...ctx.stack.slice(open).map((f) => f.path), target].map((p) => `"${p}"`).join(' → ');
      ctx.diagnostics.push(error('import-cycle', `Importing "${item.path.value}" creates a cycle: ${chain}.`, item.path.span));
      continue;
    }
    const syntax = syntaxOf(target);
    if (syntax !== undefined && syntax !== 'dsl') {
      ctx.diagnostics.push(
        error('import-not-dsl', `Cannot import "${item.path.value}": only .qr recipes can be imported (an import shares their "let" bindings).`, item.path.span),
      );
      continue;
    }
    let exports = ctx.done.get(key);
    if (!exports) {
      const read = ctx.host.read(target);
      if (isDiagnostic(read)) {
        ctx.diagnostics.push(
          error('import-not-found', `Cannot import "${item.path.value}". ${read.message}`, item.path.span),
        );
        continue;
      }
      ctx.sources.set(read.path, read.text);
      exports = importFile(read, ctx, key);
      ctx.done.set(key, exports);
    }
    for (const [name, binding] of exports) {
      const prior = scope.get(name);
      if (prior && prior !== binding) {
        ctx.diagnostics.push(
          error('duplicate-name', `The binding "${name}" is imported twice.`, item.path.span, [
            { message: 'The first definition is here.', span: prior.span },
          ]),
        );
        continue;
      }
      scope.set(name, binding);
    }
  }
  return scope;
}

function importFile(source: Source, ctx: ImportContext, key: string): Scope {
  const parsed = parseDslSyntax(source);
  ctx.diagnostics.push(...parsed.diagnostics);
  const file = parsed.value.file;
  if (!file) return new Map();
  ctx.stack.push({ key, path: source.path });
  const imported = readImports(file, source.path, ctx);
  ctx.stack.pop();
  const lowered = lowerSyntax(file, imported, true);
  ctx.diagnostics.push(...lowered.diagnostics);
  return lowered.exports;
}
