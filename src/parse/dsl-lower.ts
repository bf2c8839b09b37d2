/**
 * Lowering: a `.qr` syntax tree → the shared RecipeDocument and its
 * SpanTable. Resolves `let` bindings (a value from a binding is blamed on
 * the use site), concatenates lists, checks regex literals, and gathers
 * modifiers written directly in a stage into a group named like the stage.
 */
import { didYouMean, error, warning, type Diagnostic } from '../diagnostics.js';
import { translatePythonRegex } from '../match/python-regex.js';
import type { Span } from '../source.js';
import type { GroupDocument, MoeRewriteDocument, ModifierDocument, NodeSpans, RecipeDocument, StageDocument } from './document.js';
import { pointer } from './document.js';
import type { EntrySyntax, FileSyntax, ItemSyntax, ModifierSyntax, NameSyntax, ValueSyntax } from './dsl-syntax.js';

/** A value bound by `let`, with where it was defined. */
export interface Binding {
  readonly value: unknown;
  readonly span: Span;
}

/** Bindings visible in a file, by name. */
export type Scope = Map<string, Binding>;

/** What lowering produces: the document, its spans, and the bindings the file defines. */
export interface Lowered {
  readonly document: RecipeDocument;
  readonly spans: Map<string, NodeSpans>;
  /** Bindings this file defines with `let` (what importing it makes visible). */
  readonly exports: Scope;
  readonly diagnostics: Diagnostic[];
}

/** The rule every `let` name follows, so a binding never shadows a class name like `Linear`. */
const BINDING_NAME = /^[a-z_][A-Za-z0-9_]*$/;

/**
 * Lowers one file. `imported` holds the bindings its imports make visible;
 * `asImport` marks a file read through `import`, whose non-`let` items are
 * ignored with a warning.
 */
export function lowerSyntax(file: FileSyntax, imported: Scope, asImport: boolean): Lowered {
  const diagnostics: Diagnostic[] = [];
  const spans = new Map<string, NodeSpans>();
  const scope: Scope = new Map(imported);
  const exports: Scope = new Map();
  const laterLets = new Map<string, Span>();
  for (const item of file.items) if (item.kind === 'let') laterLets.set(item.name.text, item.name.span);

  const put = (ptr: string, value: Span, key?: Span): void => {
    spans.set(ptr, key ? { key, value } : { value });
  };

  /** Lowers a value; `use` is set while expanding a binding (all spans point at the use site). */
  const lowerValue = (v: ValueSyntax, ptr: string, use?: Span): unknown => {
    const at = use ?? v.span;
    switch (v.kind) {
      case 'string':
        put(ptr, at);
        return v.value;
      case 'number':
      case 'bool':
        put(ptr, at);
        return v.value;
      case 'null':
        put(ptr, at);
        return null;
      case 'regex':
        put(ptr, at);
        checkRegex(v.text, v.span, diagnostics);
        return 're:' + v.text;
      case 'ident': {
        const b = scope.get(v.name);
        if (b) {
          recordNested(b.value, ptr, v.span);
          return b.value;
        }
        const later = laterLets.get(v.name);
        if (later && later.start > v.span.start) {
          diagnostics.push(
            error('binding-before-definition', `The binding "${v.name}" is used before its definition.`, v.span, [
              { message: `"${v.name}" is defined here.`, span: later },
            ]),
          );
        }
        const near = v.name[0] === v.name[0]!.toLowerCase() ? didYouMean(v.name, scope.keys()) : undefined;
        if (near !== undefined && !later) {
          diagnostics.push(
            warning('unknown-binding', `No binding is named "${v.name}", so it is the string "${v.name}". Did you mean "${near}"?`, v.span),
          );
        }
        put(ptr, at);
        return v.name;
      }
      case 'list': {
        put(ptr, at);
        return v.elements.map((e, i) => lowerValue(e, `${ptr}/${i}`, use));
      }
      case 'map': {
        put(ptr, at);
        return lowerEntries(v.entries, ptr, use);
      }
      case 'concat': {
        put(ptr, at);
        const out: unknown[] = [];
        for (const part of v.parts) {
          const base = out.length;
          const lowered = lowerValue(part, '/#part', use);
          if (!Array.isArray(lowered)) {
            diagnostics.push(error('concat-not-list', 'Only lists can be joined with "+".', use ?? part.span));
            continue;
          }
          lowered.forEach((x, i) => {
            recordNested(x, `${ptr}/${base + i}`, use ?? spanOfElement(part, i));
            out.push(x);
          });
        }
        return out;
      }
    }
  };

  /** Records spans for every node of an already-lowered value, all at `at`. */
  const recordNested = (value: unknown, ptr: string, at: Span): void => {
    put(ptr, at);
    if (Array.isArray(value)) value.forEach((x, i) => recordNested(x, `${ptr}/${i}`, at));
    else if (value !== null && typeof value === 'object') {
      for (const [k, x] of Object.entries(value)) recordNested(x, `${ptr}/${pointer(k).slice(1)}`, at);
    }
  };

  const lowerEntries = (entries: readonly EntrySyntax[], ptr: string, use?: Span): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    const seen = new Map<string, Span>();
    for (const e of entries) {
      const k = e.key.text;
      const first = seen.get(k);
      if (first) {
        diagnostics.push(duplicate(`The key "${k}"`, e.key.span, first));
        continue;
      }
      seen.set(k, e.key.span);
      const p = `${ptr}/${pointer(k).slice(1)}`;
      out[k] = lowerValue(e.value, p, use);
      const s = spans.get(p)!;
      spans.set(p, { key: use ?? e.key.span, value: s.value });
    }
    return out;
  };

  let recipe: { name?: string; version?: string; model?: string } | undefined;
  let moe: RecipeDocument['moe'];
  let args: Record<string, unknown> | undefined;
  const stages: StageDocument[] = [];
  const firstOf = new Map<string, Span>();
  const once = (what: string, s: Span): boolean => {
    const first = firstOf.get(what);
    if (first) {
      diagnostics.push(error('duplicate-declaration', `A recipe can have only one ${what}.`, s, [{ message: `The first ${what} is here.`, span: first }]));
      return false;
    }
    firstOf.set(what, s);
    return true;
  };

  for (const item of file.items) {
    if (asImport && item.kind !== 'let' && item.kind !== 'import') {
      diagnostics.push(warning('import-ignored', `Only "let" bindings are imported; this ${describeItem(item)} is ignored.`, headSpan(item)));
      continue;
    }
    switch (item.kind) {
      case 'import':
        break;
      case 'let': {
        const name = item.name.text;
        if (!BINDING_NAME.test(name)) {
          diagnostics.push(
            error('binding-name-invalid', `The binding name "${name}" must start with a lowercase letter or "_", so it never hides a class name.`, item.name.span),
          );
          continue;
        }
        const prior = scope.get(name);
        if (prior) {
          diagnostics.push(duplicate(`The binding "${name}"`, item.name.span, prior.span));
          continue;
        }
        const value = lowerValue(item.value, `/#let/${name}`);
        const binding = { value, span: item.name.span };
        scope.set(name, binding);
        exports.set(name, binding);
        break;
      }
      case 'header':
        if (!once('recipe header', item.keyword)) break;
        recipe = { ...recipe, ...(item.name ? { name: item.name.value } : {}), ...(item.version ? { version: item.version.value } : {}) };
        put('/recipe', item.span, item.keyword);
        if (item.name) put('/recipe/name', item.name.span, item.keyword);
        if (item.version) put('/recipe/version', item.version.span, item.versionKeyword);
        break;
      case 'model':
        if (!once('model declaration', item.keyword)) break;
        recipe = { ...recipe, model: item.model.value };
        if (!spans.has('/recipe')) put('/recipe', item.span, item.keyword);
        put('/recipe/model', item.model.span, item.keyword);
        break;
      case 'args':
        if (!once('args block', item.keyword)) break;
        args = lowerEntries(item.entries, '/args');
        put('/args', item.span, item.keyword);
        break;
      case 'moe': {
        if (!once('moe block', item.keyword)) break;
        put('/moe', item.span, item.keyword);
        const entries = item.items.filter((x): x is EntrySyntax => x.kind === 'entry');
        const fields = lowerEntries(entries, '/moe');
        const rewrites: MoeRewriteDocument[] = [];
        const classes = new Map<string, Span>();
        for (const r of item.items) {
          if (r.kind !== 'rewrite') continue;
          const first = classes.get(r.name.text);
          if (first) {
            diagnostics.push(duplicate(`The rewrite for "${r.name.text}"`, r.name.span, first));
            continue;
          }
          classes.set(r.name.text, r.name.span);
          const ptr = pointer('moe', 'rewrites', rewrites.length);
          put(ptr, r.span, r.name.span);
          put(`${ptr}/class`, r.name.span);
          const body = lowerEntries(r.entries, ptr);
          rewrites.push({ class: r.name.text, ...body } as MoeRewriteDocument);
        }
        if (rewrites.length > 0 && 'rewrites' in fields) {
          diagnostics.push(error('duplicate-declaration', 'Declare rewrites with "rewrite Class { … }" blocks or a "rewrites" entry, not both.', spans.get('/moe/rewrites')?.key));
        }
        moe = { ...fields, ...(rewrites.length > 0 ? { rewrites } : {}) };
        if (rewrites.length > 0) put('/moe/rewrites', item.span, item.keyword);
        break;
      }
      case 'stage':
        lowerStage(item);
        break;
    }
  }

  function lowerStage(item: Extract<ItemSyntax, { kind: 'stage' }>): void {
    const first = stages.findIndex((s) => s.name === item.name.text);
    if (first >= 0) {
      diagnostics.push(duplicate(`The stage "${item.name.text}"`, item.name.span, spans.get(pointer('stages', first))!.key!));
      return;
    }
    const si = stages.length;
    const sptr = pointer('stages', si);
    put(sptr, item.span, item.name.span);
    put(`${sptr}/name`, item.name.span);
    const groups: { name: NameSyntax; span: Span; modifiers: ModifierSyntax[] }[] = [];
    let implicit: (typeof groups)[number] | undefined;
    for (const child of item.items) {
      if (child.kind === 'modifier') {
        if (!implicit) {
          implicit = { name: item.name, span: item.span, modifiers: [] };
          groups.push(implicit);
        }
        implicit.modifiers.push(child);
      } else {
        groups.push({ name: child.name, span: child.span, modifiers: [...child.modifiers] });
      }
    }
    const docGroups: GroupDocument[] = [];
    const groupNames = new Map<string, Span>();
    for (const g of groups) {
      const prior = groupNames.get(g.name.text);
      if (prior) {
        diagnostics.push(
          duplicate(`The group "${g.name.text}"`, g === implicit ? g.modifiers[0]!.name.span : g.name.span, prior),
        );
        continue;
      }
      groupNames.set(g.name.text, g === implicit ? g.modifiers[0]!.name.span : g.name.span);
      const gptr = `${sptr}/groups/${docGroups.length}`;
      put(gptr, g.span, g.name.span);
      put(`${gptr}/name`, g.name.span);
      const modifiers: ModifierDocument[] = [];
      const types = new Map<string, Span>();
      for (const m of g.modifiers) {
        const priorType = types.get(m.name.text);
        if (priorType) {
          diagnostics.push(duplicate(`The modifier "${m.name.text}" in group "${g.name.text}"`, m.name.span, priorType));
          continue;
        }
        types.set(m.name.text, m.name.span);
        const mptr = `${gptr}/modifiers/${modifiers.length}`;
        put(mptr, m.span, m.name.span);
        put(`${mptr}/type`, m.name.span);
        const margs = lowerEntries(m.entries, `${mptr}/args`);
        put(`${mptr}/args`, m.span, m.name.span);
        modifiers.push({ type: m.name.text, args: margs });
      }
      docGroups.push({ name: g.name.text, modifiers });
    }
    stages.push({ name: item.name.text, groups: docGroups });
  }

  // The root and the stage list fall back to the whole file (e.g. "no stages").
  put('', file.span);
  put('/stages', file.span);
  // Scratch pointers used while lowering bindings and concatenated parts.
  for (const k of [...spans.keys()]) if (k.startsWith('/#')) spans.delete(k);
  const document: RecipeDocument = {
    ...(recipe ? { recipe } : {}),
    ...(moe ? { moe } : {}),
    stages,
    ...(args ? { args } : {}),
  };
  return { document, spans, exports, diagnostics };
}

function spanOfElement(v: ValueSyntax, i: number): Span {
  return v.kind === 'list' && v.elements[i] ? v.elements[i]!.span : v.span;
}

function duplicate(what: string, at: Span, first: Span): Diagnostic {
  return error('duplicate-name', `${what} is declared twice.`, at, [{ message: 'The first declaration is here.', span: first }]);
}

function describeItem(item: ItemSyntax): string {
  return item.kind === 'header' ? 'recipe header' : item.kind === 'model' ? 'model declaration' : `${item.kind} block`;
}

function headSpan(item: ItemSyntax): Span {
  switch (item.kind) {
    case 'header':
    case 'model':
    case 'moe':
    case 'args':
      return item.keyword;
    case 'stage':
      return item.name.span;
    default:
      return item.span;
  }
}

/** Checks a regex literal as Python `re` would compile it; reports at the offending character. */
function checkRegex(text: string, literal: Span, diagnostics: Diagnostic[]): void {
  const r = translatePythonRegex(text);
  if (r.ok) return;
  const bodyStart = literal.start + 3;
  const at: Span =
    r.offset === undefined
      ? literal
      : { path: literal.path, start: bodyStart + r.offset, end: Math.min(bodyStart + r.offset + 1, literal.end - 1) };
  const message = `Invalid regular expression re"${text}": ${r.message}`;
  diagnostics.push(r.kind === 'unsupported' ? error('regex-unsupported', message, at) : error('regex-invalid', message, at));
}
