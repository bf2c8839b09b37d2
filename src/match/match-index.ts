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
  /** Module index by qualified name (first occurrence), `-1` when absent. */
  readonly indexOf: (name: string) => number;
  /** Class ids whose MRO contains a given class name. */
  readonly classIdsByMroName: ReadonlyMap<string, readonly number[]>;
  /** Per module: 1 when it is an `InternalModule` (never matches anything). */
  readonly internal: Uint8Array;
  /** Verdicts per pattern text, filled on demand. */
  readonly cache: Map<string, PatternHits>;
  /** True when some name holds a line break (then only the literal `re.match` translation is used). Computed on first use. */
  readonly lineBreaks: () => boolean;
  /** How many digit-insensitive regexes were evaluated so far. */
  digitInsensitiveRequests: number;
  /** Names with digit runs collapsed, built once enough digit-insensitive regexes ask (`SHAPES_AFTER`). */
  digitShapes?: DigitShapes;
}

/** Each module's name with every run of ASCII digits replaced by `0`, interned. */
export interface DigitShapes {
  /** Distinct collapsed names. */
  readonly shapes: readonly string[];
  /** Per module: index into `shapes`. */
  readonly shapeOf: Int32Array;
}

/** One pattern's verdicts over a tree. */
export interface PatternHits {
  /** Per module: bit 1 = matched by name (exact or regex), bit 2 = matched by class. */
  readonly bits: Uint8Array;
  /** How many modules the pattern hits (InternalModule excluded). */
  readonly count: number;
}

/**
 * Collapsing names costs about as much as testing eight simple regexes on
 * every name, so the collapsed names are built for the eighth
 * digit-insensitive regex on a tree; the verdicts are the same either way.
 */
const SHAPES_AFTER = 8;

/** Name bit in `PatternHits.bits`. */
export const BY_NAME = 1;
/** Class bit in `PatternHits.bits`. */
export const BY_CLASS = 2;

const indexes = new WeakMap<ModuleTree, MatchIndex>();

/** The (memoized) match index of a tree. */
export function matchIndex(tree: ModuleTree): MatchIndex {
  let index = indexes.get(tree);
  if (index) return index;
  // A hash of 100k names costs more than the few exact lookups a recipe
  // makes, so names are scanned until lookups become frequent.
  let byName: Map<string, number> | undefined;
  let lookups = 0;
  const indexOf = (name: string): number => {
    if (byName === undefined && ++lookups > 16) {
      byName = new Map();
      for (let i = tree.names.length - 1; i >= 0; i--) byName.set(tree.names[i]!, i);
    }
    return byName ? (byName.get(name) ?? -1) : tree.names.indexOf(name);
  };
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
  let breaks: boolean | undefined;
  const lineBreaks = () => (breaks ??= /[\n\r\u2028\u2029]/.test(tree.names.join('\u0000')));
  index = { tree, indexOf, classIdsByMroName, internal, cache: new Map(), lineBreaks, digitInsensitiveRequests: 0 };
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
    const plain = pattern.testPlain !== pattern.test || pattern.digitInsensitive ? !index.lineBreaks() : false;
    const test = plain ? pattern.testPlain : pattern.test;
    if (test && plain && pattern.digitInsensitive && (index.digitShapes || ++index.digitInsensitiveRequests >= SHAPES_AFTER)) {
      const { shapes, shapeOf } = digitShapes(index);
      const verdict = Uint8Array.from(shapes, (s) => (test(s) ? 1 : 0));
      for (let i = 0; i < n; i++) {
        if (internal[i] === 0 && verdict[shapeOf[i]!] === 1) {
          bits[i] = BY_NAME;
          count++;
        }
      }
    } else if (test) {
      const names = tree.names;
      for (let i = 0; i < n; i++) {
        if (internal[i] === 0 && test(names[i]!)) {
          bits[i] = BY_NAME;
          count++;
        }
      }
    }
  } else {
    const exact = index.indexOf(pattern.text);
    if (exact >= 0 && internal[exact] === 0) bits[exact] = BY_NAME;
    const ids = index.classIdsByMroName.get(pattern.text);
    if (!ids) count = exact >= 0 && bits[exact] === BY_NAME ? 1 : 0;
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

/**
 * Collapsed names, built parent-first: a module's shape is its parent's
 * shape plus its own collapsed local name, so most modules cost two map
 * lookups instead of a regex replace over the full name.
 */
export function digitShapes(index: MatchIndex): DigitShapes {
  if (index.digitShapes) return index.digitShapes;
  const { tree } = index;
  const n = tree.names.length;
  const shapeOf = new Int32Array(n);
  const shapes: string[] = [];
  const byShape = new Map<string, number>();
  /** Local name → id of its collapsed form; collapsed forms repeat (every expert index becomes "0"). */
  const localIds = new Map<string, number>();
  const collapsedIds = new Map<string, number>();
  const collapsed: string[] = [];
  const children = new Map<number, number>();
  const intern = (s: string) => {
    let id = byShape.get(s);
    if (id === undefined) {
      id = shapes.length;
      shapes.push(s);
      byShape.set(s, id);
    }
    return id;
  };
  for (let i = 0; i < n; i++) {
    const name = tree.names[i]!;
    const p = tree.parents[i]!;
    const parentName = p >= 0 ? tree.names[p]! : '';
    if (p < 0 || parentName === '' || name.length <= parentName.length || name.charCodeAt(parentName.length) !== 46 || !name.startsWith(parentName)) {
      shapeOf[i] = intern(name.replace(/[0-9]+/g, '0'));
      continue;
    }
    const local = name.slice(parentName.length + 1);
    let localId = localIds.get(local);
    if (localId === undefined) {
      const c = local.replace(/[0-9]+/g, '0');
      localId = collapsedIds.get(c);
      if (localId === undefined) {
        localId = collapsed.length;
        collapsed.push(c);
        collapsedIds.set(c, localId);
      }
      localIds.set(local, localId);
    }
    const key = shapeOf[p]! * 0x100000 + localId;
    let id = children.get(key);
    if (id === undefined) {
      id = intern(`${shapes[shapeOf[p]!]!}.${collapsed[localId]!}`);
      children.set(key, id);
    }
    shapeOf[i] = id;
  }
  index.digitShapes = { shapes, shapeOf };
  return index.digitShapes;
}
