/**
 * The llm-compressor YAML front end: reads a recipe exactly as
 * `yaml.safe_load` + `Recipe.from_dict` would (YAML 1.1 scalars, last
 * duplicate wins, non-stage keys ignored) and reports, with spans, every
 * place llm-compressor would silently drop or collapse something.
 */
import { parseDocument, type YAMLError } from 'yaml';
import { error, type Diagnostic, type Result } from '../diagnostics.js';
import { MAX_SOURCE_BYTES } from '../source-host.js';
import { span, type Source } from '../source.js';
import type { ParsedRecipe } from './document.js';
import { fromDict } from './from-dict.js';
import { MAX_DEPTH, yamlTree } from './yaml-tree.js';

/** How the text is read: PyYAML's YAML 1.1, or JSON (YAML 1.2's JSON subset). */
export type YamlDialect = 'yaml' | 'json';

function yamlErrorDiagnostic(e: YAMLError, path: string): Diagnostic {
  const message = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  return error('yaml-syntax', `${message.replace(/\.?$/, '.')}`, span(path, e.pos[0], Math.max(e.pos[1], e.pos[0] + 1)));
}

/**
 * Offset where flow collections (`[`, `{`) nest deeper than `limit`, found by
 * a quote- and comment-aware scan before the YAML parser runs: its recursive
 * descent would otherwise exhaust the stack or memory on hostile input.
 */
export function flowDepthExceeded(text: string, limit: number): number | undefined {
  let depth = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      const nl = text.indexOf('\n', i);
      if (nl < 0) break;
      i = nl;
    } else if ((c === '"' || c === "'") && depth > 0) quote = c;
    else if (c === '[' || c === '{') {
      if (++depth > limit) return i;
    } else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return undefined;
}

/** Parses recipe text (already read) into a document; `text` may differ from `source.text` only by blanked-out regions. */
export function parseYamlText(source: Source, text: string, dialect: YamlDialect = 'yaml'): Result<ParsedRecipe | null> {
  const sources = new Map([[source.path, source.text]]);
  if (text.length > MAX_SOURCE_BYTES) {
    const d = error('file-too-large', `The file "${source.path}" is ${text.length} characters; recipes are limited to ${MAX_SOURCE_BYTES}.`);
    return { value: null, diagnostics: [d] };
  }
  const deep = flowDepthExceeded(text, MAX_DEPTH);
  if (deep !== undefined) {
    return { value: null, diagnostics: [error('yaml-too-deep', `The recipe nests deeper than ${MAX_DEPTH} levels.`, span(source.path, deep, deep + 1))] };
  }
  let doc;
  try {
    doc = parseDocument(text, {
      version: dialect === 'json' ? '1.2' : '1.1',
      uniqueKeys: false,
      keepSourceTokens: false,
      prettyErrors: false,
    });
  } catch (e) {
    if (e instanceof RangeError) {
      const d = error('yaml-too-deep', 'The recipe nests too deeply to be read.', span(source.path, 0, Math.min(1, text.length)));
      return { value: null, diagnostics: [d] };
    }
    throw e;
  }
  const overflow = doc.errors.find((e) => /call stack/i.test(e.message));
  if (overflow) {
    return { value: null, diagnostics: [error('yaml-too-deep', 'The recipe nests too deeply to be read.', span(source.path, overflow.pos[0], overflow.pos[0] + 1))] };
  }
  if (doc.errors.length > 0) {
    return { value: null, diagnostics: doc.errors.map((e) => yamlErrorDiagnostic(e, source.path)) };
  }
  const tree = yamlTree(doc, source.path, text);
  if (tree.diagnostics.some((d) => d.code === 'yaml-too-deep' || d.code === 'yaml-alias-limit')) {
    return { value: null, diagnostics: tree.diagnostics };
  }
  const result = fromDict(tree.value, tree.spans);
  return {
    value: { document: result.document, spans: result.spans, sources },
    diagnostics: [...tree.diagnostics, ...result.diagnostics],
  };
}

/** Parses a `.yaml`/`.yml` recipe. */
export function parseYaml(source: Source): Result<ParsedRecipe | null> {
  return parseYamlText(source, source.text, 'yaml');
}
