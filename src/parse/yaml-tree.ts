/**
 * Turns a parsed YAML document into plain JSON values plus a parallel tree
 * of spans, the way PyYAML's `safe_load` would see it: YAML 1.1 scalars,
 * duplicate keys collapsed (last value wins, first position kept), aliases
 * expanded under a budget, and bounded nesting so hostile input cannot
 * exhaust the stack.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, type Document, type Node } from 'yaml';
import { error, warning, type Diagnostic } from '../diagnostics.js';
import { span, type Span } from '../source.js';

/** Deepest nesting accepted; real recipes nest fewer than ten levels. */
export const MAX_DEPTH = 64;

/** Most nodes alias expansion may produce before the document is rejected. */
export const MAX_ALIAS_NODES = 10_000;

/** Spans of one value and, for collections, of its children by key or index. */
export interface SpanNode {
  readonly key?: Span;
  readonly value: Span;
  readonly children?: ReadonlyMap<string, SpanNode>;
}

/** A value that PyYAML's safe loader cannot construct (a `!!python/...` tag). */
export const PYTHON_OBJECT: unique symbol = Symbol('python-object');

/** What conversion produced: the value, its spans, and problems found. */
export interface YamlTree {
  readonly value: unknown;
  readonly spans: SpanNode;
  readonly diagnostics: readonly Diagnostic[];
}

interface Walk {
  readonly path: string;
  readonly text: string;
  readonly doc: Document;
  readonly diagnostics: Diagnostic[];
  aliasNodes: number;
  tooDeep: boolean;
  aliasBomb: boolean;
}

/** Converts `doc.contents` into values and spans. */
export function yamlTree(doc: Document, path: string, text: string): YamlTree {
  const walk: Walk = { path, text, doc, diagnostics: [], aliasNodes: 0, tooDeep: false, aliasBomb: false };
  const root = doc.contents as Node | null;
  if (!root) return { value: null, spans: { value: span(path, 0, text.length) }, diagnostics: [] };
  const [value, spans] = convert(root, walk, 0, false, undefined);
  return { value, spans, diagnostics: walk.diagnostics };
}

/**
 * Warns where PyYAML's YAML 1.1 reads a plain scalar as something other than
 * the text a reader sees: `2:4` as the base-60 integer 124, `0755` as octal,
 * `yes`/`no`/`on`/`off` as booleans. quantc keeps PyYAML's reading.
 */
function yaml11Surprise(value: unknown, text: string, at: Span, walk: Walk): void {
  let what: string | undefined;
  if (typeof value === 'number' && text.includes(':')) what = `the base-60 number ${value}`;
  else if (typeof value === 'number' && /^[-+]?0[0-7]+$/.test(text)) what = `the octal number ${value}`;
  else if (typeof value === 'boolean' && !/^(true|false)$/i.test(text)) what = `the boolean ${value ? 'true' : 'false'}`;
  if (what === undefined) return;
  walk.diagnostics.push(
    warning('yaml-1-1-scalar', `PyYAML (YAML 1.1) reads "${text}" as ${what}; quote it if you meant the text "${text}".`, at),
  );
}

function nodeSpan(node: Node, path: string): Span {
  const r = node.range;
  return r ? span(path, r[0], r[1]) : span(path, 0, 0);
}

function convert(node: Node, walk: Walk, depth: number, viaAlias: boolean, at: Span | undefined): [unknown, SpanNode] {
  const here = at ?? nodeSpan(node, walk.path);
  if (depth > MAX_DEPTH) {
    if (!walk.tooDeep) {
      walk.tooDeep = true;
      walk.diagnostics.push(error('yaml-too-deep', `The recipe nests deeper than ${MAX_DEPTH} levels.`, here));
    }
    return [null, { value: here }];
  }
  if (viaAlias && ++walk.aliasNodes > MAX_ALIAS_NODES) {
    if (!walk.aliasBomb) {
      walk.aliasBomb = true;
      walk.diagnostics.push(error('yaml-alias-limit', `Aliases expand to more than ${MAX_ALIAS_NODES} nodes; the recipe looks like an alias bomb.`, here));
    }
    return [null, { value: here }];
  }
  if (isAlias(node)) {
    const target = node.resolve(walk.doc);
    if (!target) {
      walk.diagnostics.push(error('yaml-syntax', `The alias "*${node.source}" refers to no anchor.`, here));
      return [null, { value: here }];
    }
    return convert(target, walk, depth + 1, true, here);
  }
  // The two Python tags llm-compressor's own recipe.yaml holds read as what they mean: a tuple (SmoothQuant
  // mappings) as a list, an ActivationOrdering enum (config-group actorder) as its value.
  if (node.tag === 'tag:yaml.org,2002:python/tuple' && isSeq(node)) return convert(Object.assign(node.clone(), { tag: undefined }) as Node, walk, depth, viaAlias, at);
  if (typeof node.tag === 'string' && node.tag.endsWith('python/object/apply:compressed_tensors.quantization.quant_args.ActivationOrdering') && isSeq(node) && node.items.length === 1 && isScalar(node.items[0])) {
    return [(node.items[0] as { value: unknown }).value, { value: here }];
  }
  if (typeof node.tag === 'string' && node.tag.startsWith('tag:yaml.org,2002:python/')) {
    const tagStart = walk.text.lastIndexOf('!!python/', here.start);
    const tagged = tagStart >= 0 ? span(walk.path, tagStart, here.end) : here;
    walk.diagnostics.push(
      warning(
        'yaml-python-tag',
        `The tag "!!${node.tag.slice('tag:yaml.org,2002:'.length)}" names a Python object that a safe YAML loader cannot read; quantc treats this value as unset.`,
        tagged,
      ),
    );
    return [PYTHON_OBJECT, { value: tagged }];
  }
  if (isScalar(node)) {
    if (!viaAlias && node.type === 'PLAIN') yaml11Surprise(node.value, walk.text.slice(here.start, here.end), here, walk);
    return [node.value ?? null, { value: here }];
  }
  if (isSeq(node)) {
    const out: unknown[] = [];
    const children = new Map<string, SpanNode>();
    for (const item of node.items) {
      const [v, s] = convert(item as Node, walk, depth + 1, viaAlias, viaAlias ? here : undefined);
      children.set(String(out.length), s);
      out.push(v);
    }
    return [out, { value: here, children }];
  }
  if (isMap(node)) {
    const out: Record<string, unknown> = {};
    const children = new Map<string, SpanNode>();
    const set = (key: string, v: unknown, s: SpanNode) => {
      if (Object.hasOwn(out, key)) out[key] = v;
      else Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      children.set(key, s);
    };
    // YAML 1.1 merge keys (`<<: *base`), as PyYAML's safe_load applies them: the mapping's own keys win,
    // and among merged mappings the earlier one wins.
    const own = new Set(node.items.filter((p) => isPair(p) && !isMergeKey(p.key)).map((p) => keyText((p as { key: unknown }).key as Node | null)));
    const merged = new Set<string>();
    for (const pair of node.items) {
      if (!isPair(pair) || !isMergeKey(pair.key)) continue;
      const [v, s] = pair.value ? convert(pair.value as Node, walk, depth + 1, viaAlias, viaAlias ? here : undefined) : [null, { value: here }];
      const sources = Array.isArray(v) ? v.map((x, i) => [x, s.children?.get(String(i)) ?? s] as const) : [[v, s] as const];
      for (const [source, sourceSpans] of sources) {
        if (typeof source !== 'object' || source === null || Array.isArray(source)) {
          walk.diagnostics.push(error('yaml-syntax', 'A merge key "<<" takes a mapping or a list of mappings.', sourceSpans.value));
          continue;
        }
        for (const [key, value] of Object.entries(source)) {
          if (own.has(key) || merged.has(key)) continue;
          merged.add(key);
          const child = sourceSpans.children?.get(key) ?? { value: sourceSpans.value };
          set(key, value, { key: sourceSpans.value, value: child.value, ...(child.children ? { children: child.children } : {}) });
        }
      }
    }
    for (const pair of node.items) {
      if (!isPair(pair) || isMergeKey(pair.key)) continue;
      const keyNode = pair.key as Node | null;
      const keySpan = viaAlias || !keyNode ? here : nodeSpan(keyNode, walk.path);
      const key = keyText(keyNode);
      const valueNode = pair.value as Node | null;
      const [v, s] = valueNode ? convert(valueNode, walk, depth + 1, viaAlias, viaAlias ? here : undefined) : [null, { value: keySpan }];
      const first = children.get(key);
      if (first && !viaAlias) {
        walk.diagnostics.push(
          warning('duplicate-key', `The key "${key}" appears more than once; like llm-compressor, quantc keeps the last value.`, keySpan, [
            { message: `"${key}" first appears here.`, span: first.key ?? first.value },
          ]),
        );
      }
      set(key, v, { key: keySpan, value: s.value, ...(s.children ? { children: s.children } : {}) });
    }
    return [out, { value: here, children }];
  }
  return [null, { value: here }];
}

/** A mapping key as the text llm-compressor sees. */
function keyText(keyNode: Node | null): string {
  return keyNode ? String(isScalar(keyNode) ? keyNode.value : keyNode.toString()) : '';
}

/** True for YAML 1.1's merge key `<<` (the yaml library resolves it to a symbol). */
function isMergeKey(key: unknown): boolean {
  return isScalar(key) && typeof key.value === 'symbol' && key.value.description === '<<';
}
