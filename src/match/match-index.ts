/**
 * Per-tree lookup structures that make matching linear in modules: names
 * by hash, classes by MRO member, and each pattern's verdict on every module
 * computed once. compressed-tensors instead tests every (module, pattern)
 * pair with an MRO scan and a regex, which takes minutes on large MoE models.
 */
import type { ModuleTree } from '../model/module-tree.js';
import type { CompiledPattern } from './pattern.js';

/** The class compressed-tensors never matches (its own helper modules). */
const INTERNAL_MODULE = 'InternalModule';

/** Lookups over one tree, with pattern verdicts cached by pattern text. */
export interface MatchIndex {
  readonly tree: ModuleTree;
  /** Module index by qualified name. */
  readonly byName: ReadonlyMap<string, number>;
  /** Class ids whose MRO contains a given class name. */
  readonly classIdsByMroName: ReadonlyMap<string, readonly number[]>;
  /** Per module: 1 when it is an `InternalModule` (never matches anything). */
  readonly internal: Uint8Array;
  /** Verdicts per pattern text, filled on demand. */
  readonly cache: Map<string, PatternHits>;
}

/** One pattern's verdicts over a tree. */
export interface PatternHits {
  /** Per module: bit 1 = matched by name (exact or regex), bit 2 = matched by class. */
  readonly bits: Uint8Array;
  /** How many modules the pattern hits (InternalModule excluded). */
  readonly count: number;
}

/** Name bit in `PatternHits.bits`. */
export const BY_NAME = 1;
/** Class bit in `PatternHits.bits`. */
export const BY_CLASS = 2;

const indexes = new WeakMap<ModuleTree, MatchIndex>();

/** The (memoized) match index of a tree. */
export function matchIndex(tree: ModuleTree): MatchIndex {
  let index = indexes.get(tree);
  if (index) return index;
  const byName = new Map<string, number>();
  tree.names.forEach((n, i) => byName.set(n, i));
  const classIdsByMroName = new Map<string, number[]>();
  const internalClass = new Uint8Array(tree.classes.length);
  tree.classes.forEach((c, id) => {
    for (const m of new Set(c.mro)) {
      const list = classIdsByMroName.get(m);
      if (list) list.push(id);
      else classIdsByMroName.set(m, [id]);
    }
    if (c.mro.includes(INTERNAL_MODULE)) internalClass[id] = 1;
  });
  const internal = new Uint8Array(tree.names.length);
  for (let i = 0; i < internal.length; i++) internal[i] = internalClass[tree.classIds[i]!]!;
  index = { tree, byName, classIdsByMroName, internal, cache: new Map() };
  indexes.set(tree, index);
  return index;
}

/**
 * Which modules a pattern hits, by name and by class. Regexes run once per
 * name; plain patterns cost one hash lookup plus one pass over class ids.
 */
export function patternHits(index: MatchIndex, pattern: CompiledPattern): PatternHits {
  const cached = index.cache.get(pattern.text);
  if (cached) return cached;
  const { tree, internal } = index;
  const n = tree.names.length;
  const bits = new Uint8Array(n);
  let count = 0;
  if (pattern.kind === 'regex') {
    const test = pattern.test;
    if (test) {
      const names = tree.names;
      for (let i = 0; i < n; i++) {
        if (internal[i] === 0 && test(names[i]!)) {
          bits[i] = BY_NAME;
          count++;
        }
      }
    }
  } else {
    const exact = index.byName.get(pattern.text);
    if (exact !== undefined && internal[exact] === 0) bits[exact] = BY_NAME;
    const ids = index.classIdsByMroName.get(pattern.text);
    if (!ids) count = bits[exact ?? 0] === BY_NAME ? 1 : 0;
    else {
      const hitClass = new Uint8Array(tree.classes.length);
      for (const id of ids) hitClass[id] = 1;
      const classIds = tree.classIds;
      for (let i = 0; i < n; i++) {
        if (hitClass[classIds[i]!] === 1 && internal[i] === 0) bits[i] |= BY_CLASS;
        if (bits[i] !== 0) count++;
      }
    }
  }
  const hits = { bits, count };
  index.cache.set(pattern.text, hits);
  return hits;
}
