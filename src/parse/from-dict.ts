/**
 * llm-compressor's `Recipe.from_dict`, applied to a loaded mapping: top-level
 * `*_stage` mappings hold `*_modifiers` mappings of `ModifierName: {args}`.
 * The meaning is kept exactly (what llm-compressor ignores is ignored, names
 * are derived the same way); quantc only adds warnings where it would
 * silently drop something, and errors where it would crash.
 */
import { error, warning, type Diagnostic } from '../diagnostics.js';
import type { Span } from '../source.js';
import { pointer, type GroupDocument, type ModifierDocument, type NodeSpans, type RecipeDocument, type StageDocument } from './document.js';
import { PYTHON_OBJECT, type SpanNode } from './yaml-tree.js';

/** The top-level key of quantc's own settings; llm-compressor ignores it like any non-stage key. */
export const QUANTC_KEY = 'quantc';

/** The document and its span table, keyed by JSON pointer into the document. */
export interface FromDictResult {
  readonly document: RecipeDocument;
  readonly spans: Map<string, NodeSpans>;
  readonly diagnostics: Diagnostic[];
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Copies a span subtree into the table under `ptr`. */
function place(table: Map<string, NodeSpans>, ptr: string, node: SpanNode, key?: Span): void {
  const k = key ?? node.key;
  table.set(ptr, k ? { key: k, value: node.value } : { value: node.value });
  for (const [name, child] of node.children ?? []) place(table, `${ptr}${pointer(name)}`, child);
}

/** Drops values a safe loader could not construct (reported already), recursively. */
function withoutPythonObjects(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => v !== PYTHON_OBJECT).map(withoutPythonObjects);
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== PYTHON_OBJECT) out[k] = withoutPythonObjects(v);
    return out;
  }
  return value;
}

/**
 * The modifiers inside an ignored key (`depth` 1: a group of modifiers; 2: a
 * stage of groups), named so the warning says what will not run.
 */
function lostModifiers(value: unknown, depth: 1 | 2): string {
  const groups = depth === 1 ? [value] : isRecord(value) ? Object.values(value) : [];
  const names = groups.flatMap((g) => (isRecord(g) ? Object.keys(g).filter((k) => k.endsWith('Modifier')) : []));
  if (names.length === 0) return '';
  return ` The ${names.length === 1 ? 'modifier' : 'modifiers'} in it (${names.join(', ')}) never ${names.length === 1 ? 'runs' : 'run'}.`;
}

/** `Recipe.from_dict(d)` with diagnostics. */
export function fromDict(root: unknown, rootSpans: SpanNode): FromDictResult {
  const spans = new Map<string, NodeSpans>();
  const diagnostics: Diagnostic[] = [];
  spans.set('', { value: rootSpans.value });
  if (!isRecord(root)) {
    diagnostics.push(error('recipe-not-mapping', 'A recipe must be a mapping of "<name>_stage" keys to stages.', rootSpans.value));
    return { document: { stages: [] }, spans, diagnostics };
  }
  const stages: StageDocument[] = [];
  let recipe: RecipeDocument['recipe'];
  let moe: RecipeDocument['moe'];
  let args: RecipeDocument['args'];
  for (const [key, value] of Object.entries(root)) {
    const node = rootSpans.children?.get(key) ?? { value: rootSpans.value };
    const keySpan = node.key ?? node.value;
    if (key === QUANTC_KEY) {
      const ext = readExtension(value, node, spans, diagnostics);
      recipe = ext.recipe ?? recipe;
      moe = ext.moe ?? moe;
      continue;
    }
    if (key === 'args') {
      if (!isRecord(value)) {
        diagnostics.push(error('invalid-type', 'Top-level "args" must be a mapping; llm-compressor rejects anything else.', node.value));
        continue;
      }
      args = withoutPythonObjects(value) as Record<string, unknown>;
      place(spans, pointer('args'), node);
      diagnostics.push(warning('recipe-args-unused', 'Top-level "args" is read by llm-compressor but never used; it has no effect.', keySpan));
      continue;
    }
    if (!key.endsWith('_stage')) {
      diagnostics.push(
        warning('top-level-key-ignored', `The top-level key "${key}" does not end in "_stage"; llm-compressor ignores it.${lostModifiers(value, 2)}`, keySpan),
      );
      continue;
    }
    if (!isRecord(value)) {
      diagnostics.push(warning('stage-not-mapping', `The stage "${key}" is not a mapping; llm-compressor ignores it.`, keySpan));
      continue;
    }
    const stagePtr = pointer('stages', stages.length);
    place(spans, stagePtr, { value: node.value }, keySpan);
    spans.set(`${stagePtr}/name`, { value: keySpan });
    stages.push(readStage(key, value, node, stagePtr, spans, diagnostics));
  }
  if (stages.every((s) => s.groups.every((g) => g.modifiers.length === 0))) {
    diagnostics.push(warning('no-modifiers', 'The recipe has no modifiers; llm-compressor would run nothing and quantize nothing.', rootSpans.value));
  }
  const document: RecipeDocument = {
    ...(recipe ? { recipe } : {}),
    ...(moe ? { moe } : {}),
    stages,
    ...(args ? { args } : {}),
  };
  return { document, spans, diagnostics };
}

function readStage(
  key: string,
  value: Record<string, unknown>,
  node: SpanNode,
  stagePtr: string,
  spans: Map<string, NodeSpans>,
  diagnostics: Diagnostic[],
): StageDocument {
  const groups: GroupDocument[] = [];
  for (const [groupKey, groupValue] of Object.entries(value)) {
    const gnode = node.children?.get(groupKey) ?? { value: node.value };
    const gkey = gnode.key ?? gnode.value;
    if (!groupKey.endsWith('_modifiers')) {
      diagnostics.push(
        warning('group-key-ignored', `The key "${groupKey}" in stage "${key}" does not end in "_modifiers"; llm-compressor ignores it.${lostModifiers(groupValue, 1)}`, gkey),
      );
      continue;
    }
    if (!isRecord(groupValue)) {
      diagnostics.push(warning('group-not-mapping', `The modifier group "${groupKey}" is not a mapping; llm-compressor ignores it.`, gkey));
      continue;
    }
    const groupPtr = `${stagePtr}${pointer('groups', groups.length)}`;
    place(spans, groupPtr, { value: gnode.value }, gkey);
    spans.set(`${groupPtr}/name`, { value: gkey });
    const modifiers: ModifierDocument[] = [];
    for (const [type, args] of Object.entries(groupValue)) {
      const mnode = gnode.children?.get(type) ?? { value: gnode.value };
      const mkey = mnode.key ?? mnode.value;
      if (!isRecord(args)) {
        const what = args === null || args === PYTHON_OBJECT ? 'has no arguments' : 'is not a mapping of arguments';
        diagnostics.push(
          error('modifier-not-mapping', `The modifier "${type}" ${what}; llm-compressor fails on it. Write "${type}: {}" for all defaults.`, mkey),
        );
        continue;
      }
      if (Object.hasOwn(args, 'group')) {
        const g = mnode.children?.get('group');
        diagnostics.push(
          error(
            'modifier-group-argument',
            `The modifier "${type}" sets "group", which llm-compressor also derives from "${groupKey}" and rejects as a duplicate argument.`,
            g?.key ?? mkey,
          ),
        );
      }
      const modPtr = `${groupPtr}${pointer('modifiers', modifiers.length)}`;
      spans.set(modPtr, { key: mkey, value: mnode.value });
      spans.set(`${modPtr}/type`, { value: mkey });
      place(spans, `${modPtr}/args`, { value: mnode.value, ...(mnode.children ? { children: mnode.children } : {}) });
      modifiers.push({ type, args: withoutPythonObjects(args) as Record<string, unknown> });
    }
    groups.push({ name: groupKey.split('_modifiers').join(''), modifiers });
  }
  return { name: key.split('_stage').join(''), groups };
}

function readExtension(
  value: unknown,
  node: SpanNode,
  spans: Map<string, NodeSpans>,
  diagnostics: Diagnostic[],
): Pick<RecipeDocument, 'recipe' | 'moe'> {
  const keySpan = node.key ?? node.value;
  if (!isRecord(value)) {
    diagnostics.push(error('invalid-type', `"${QUANTC_KEY}" must be a mapping with "recipe" and/or "moe".`, node.value));
    return {};
  }
  const out: { recipe?: RecipeDocument['recipe']; moe?: RecipeDocument['moe'] } = {};
  for (const [k, v] of Object.entries(value)) {
    const child = node.children?.get(k) ?? { value: node.value };
    if (k === 'recipe' || k === 'moe') {
      place(spans, pointer(k), child);
      out[k] = withoutPythonObjects(v) as never;
    } else {
      diagnostics.push(
        error('unknown-argument', `"${QUANTC_KEY}" has no setting "${k}". Its settings are "recipe" and "moe".`, child.key ?? keySpan),
      );
    }
  }
  return out;
}
