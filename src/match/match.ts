/**
 * compressed-tensors matching, reproduced exactly but computed per pattern
 * instead of per (module, pattern) pair: `match_named_modules` (first target
 * in list order records the match; ignored modules still count for the
 * target) and `apply_quantization_config` (which config group's scheme each
 * matched module receives, and which matched modules receive none).
 */
import type { QuantizationScheme } from '../ir/types.js';
import type { ModuleTree } from '../model/module-tree.js';
import type { Span } from '../source.js';
import { isCachedAttention } from './attention.js';
import { BY_CLASS, BY_NAME, matchIndex, patternHits, type MatchIndex } from './match-index.js';
import type { CompiledPattern } from './pattern.js';

/** What `match_named_modules(model, targets, ignore)` yields and records. */
export interface NamedModulesMatch {
  /** Yielded modules (matched by a target, not ignored), in `named_modules()` order. */
  readonly modules: Int32Array;
  /** Per yielded module, the index into `targets` of the first target that matched it. */
  readonly firstTarget: Int32Array;
  /** Modules a target matched but an ignore entry removed, in order. */
  readonly ignored: readonly IgnoredModule[];
  /** Per target: how many modules it was recorded for (first match only; ignored ones included). */
  readonly recorded: readonly number[];
  /** Indices of targets never recorded: compressed-tensors warns "Could not match" for these. */
  readonly unmatchedTargets: readonly number[];
}

/** A module removed by `ignore`. */
export interface IgnoredModule {
  readonly module: number;
  /** The first target (list order) that matched it. */
  readonly target: number;
  /** The first ignore entry (list order) that matched it. */
  readonly ignore: number;
}

/**
 * `match_named_modules` exactly: for each module in order, the first target
 * in list order that matches it (by name or by class in the MRO) is
 * recorded, and the module is yielded unless an ignore entry matches it.
 * `InternalModule`s never match.
 */
export function matchNamedModules(
  tree: ModuleTree,
  targets: readonly CompiledPattern[],
  ignore: readonly CompiledPattern[],
): NamedModulesMatch {
  const index = matchIndex(tree);
  const n = tree.names.length;
  const first = new Int32Array(n).fill(-1);
  targets.forEach((t, ti) => {
    const bits = patternHits(index, t).bits;
    for (let i = 0; i < n; i++) if (first[i]! < 0 && bits[i] !== 0) first[i] = ti;
  });
  const firstIgnore = ignoreMask(index, ignore);
  const recorded = targets.map(() => 0);
  let yielded = 0;
  const ignored: IgnoredModule[] = [];
  for (let i = 0; i < n; i++) {
    const t = first[i]!;
    if (t < 0) continue;
    recorded[t]!++;
    if (firstIgnore[i] === 0) yielded++;
    else ignored.push({ module: i, target: t, ignore: firstIgnore[i]! - 1 });
  }
  const modules = new Int32Array(yielded);
  const firstTarget = new Int32Array(yielded);
  for (let i = 0, k = 0; i < n; i++) {
    if (first[i]! >= 0 && firstIgnore[i] === 0) {
      modules[k] = i;
      firstTarget[k++] = first[i]!;
    }
  }
  const unmatchedTargets = recorded.flatMap((c, t) => (c === 0 ? [t] : []));
  return { modules, firstTarget, ignored, recorded, unmatchedTargets };
}

/** Per module: 0, or 1 + the index of the first ignore entry that matches it. */
function ignoreMask(index: MatchIndex, ignore: readonly CompiledPattern[]): Uint16Array {
  const mask = new Uint16Array(index.tree.names.length);
  for (let k = ignore.length - 1; k >= 0; k--) {
    const bits = patternHits(index, ignore[k]!).bits;
    for (let i = 0; i < bits.length; i++) if (bits[i] !== 0) mask[i] = k + 1;
  }
  return mask;
}

/** The warning compressed-tensors logs for a target it never recorded. */
export function couldNotMatchMessage(tree: ModuleTree, target: string): string {
  const root = tree.classes[tree.classIds[0]!]!.name;
  return `Could not match \`${target}\` in instance of ${root}`;
}

/** One config group as `apply_quantization_config` sees it. */
export interface SchemeGroup {
  readonly name: string;
  readonly targets: readonly CompiledPattern[];
  readonly scheme: QuantizationScheme;
  /** Where the group was written, for diagnostics about the group as a whole. */
  readonly origin?: Span | undefined;
}

/**
 * Matched modules with the config group whose scheme each gets (or would
 * get), column-wise: entry k is module `modules[k]`, group `groups[k]`
 * (index into the groups given to `assignSchemes`), decided by target
 * `targets[k]` (index into `SchemeAssignment.targets`).
 */
export interface ModuleSchemes {
  readonly modules: Int32Array;
  readonly groups: Int32Array;
  readonly targets: Int32Array;
}

/** Where every matched module ends up under `apply_quantization_config`. */
export interface SchemeAssignment {
  /**
   * `target_to_scheme`: distinct target strings in first-seen order, each
   * owned by the last group that lists it.
   */
  readonly targets: readonly { readonly pattern: CompiledPattern; readonly group: number }[];
  readonly match: NamedModulesMatch;
  /** `nn.Linear` / `nn.Embedding` subclasses: they receive weight quantization. */
  readonly quantized: ModuleSchemes;
  /** Cached-attention modules matched narrowly: they receive the scheme's activation (query) quantization. */
  readonly attention: ModuleSchemes;
  /** Matched, not ignored, yet no scheme attached (MoE blocks, fused experts, non-Linear routers, …). */
  readonly skipped: ModuleSchemes;
}

/**
 * `apply_quantization_config` exactly (kv-cache aside, see `kvCacheModules`):
 * the same target string in two groups belongs to the later group; each
 * yielded module takes the scheme of its highest-precedence target (exact
 * names, then `re:` targets, each alphabetical by string, then class names);
 * only Linear/Embedding subclasses and narrowly matched cached-attention
 * modules receive it.
 */
export function assignSchemes(tree: ModuleTree, groups: readonly SchemeGroup[], ignore: readonly CompiledPattern[]): SchemeAssignment {
  const owner = new Map<string, { pattern: CompiledPattern; group: number }>();
  groups.forEach((g, gi) => {
    for (const p of g.targets) {
      const prev = owner.get(p.text);
      owner.set(p.text, { pattern: prev?.pattern ?? p, group: gi });
    }
  });
  const targets = [...owner.values()];
  const patterns = targets.map((t) => t.pattern);
  const match = matchNamedModules(tree, patterns, ignore);
  const index = matchIndex(tree);
  const winners = winningTargets(index, patterns, match.modules);
  const quantizable = quantizableClasses(tree);
  const kind = new Uint8Array(match.modules.length);
  const counts = [0, 0, 0];
  match.modules.forEach((m, k) => {
    const group = targets[winners[k]!]!.group;
    kind[k] = quantizable[tree.classIds[m]!] === 1 ? 0 : isCachedAttention(tree, m) && isNarrowMatch(tree, index, groups[group]!.targets, m) ? 1 : 2;
    counts[kind[k]!]!++;
  });
  const lists = counts.map((c) => ({ modules: new Int32Array(c), groups: new Int32Array(c), targets: new Int32Array(c) }));
  const fill = [0, 0, 0];
  match.modules.forEach((m, k) => {
    const list = lists[kind[k]!]!;
    const at = fill[kind[k]!]!++;
    list.modules[at] = m;
    list.targets[at] = winners[k]!;
    list.groups[at] = targets[winners[k]!]!.group;
  });
  return { targets, match, quantized: lists[0]!, attention: lists[1]!, skipped: lists[2]! };
}

/**
 * Per yielded module, `match_targets(...)[0]`: the first target in
 * precedence order that matches by name, else the first that matches by
 * class. Written in reverse precedence so the best target is written last.
 */
function winningTargets(index: MatchIndex, patterns: readonly CompiledPattern[], modules: Int32Array): Int32Array {
  const precedence = patterns.map((_, i) => i).sort((a, b) => comparePrecedence(patterns[a]!.text, patterns[b]!.text));
  const byName = new Int32Array(modules.length).fill(-1);
  const byClass = new Int32Array(modules.length).fill(-1);
  for (let r = precedence.length - 1; r >= 0; r--) {
    const t = precedence[r]!;
    const bits = patternHits(index, patterns[t]!).bits;
    for (let k = 0; k < modules.length; k++) {
      const b = bits[modules[k]!]!;
      if ((b & BY_NAME) !== 0) byName[k] = t;
      if ((b & BY_CLASS) !== 0) byClass[k] = t;
    }
  }
  return byName.map((t, k) => (t >= 0 ? t : byClass[k]!));
}

/** `match_targets`' order: `sorted(targets, key=lambda x: ("re:" in x, x))`, by code point. */
export function comparePrecedence(a: string, b: string): number {
  const ra = a.includes('re:');
  const rb = b.includes('re:');
  if (ra !== rb) return ra ? 1 : -1;
  return compareCodePoints(a, b);
}

function compareCodePoints(a: string, b: string): number {
  const ca = [...a];
  const cb = [...b];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const d = ca[i]!.codePointAt(0)! - cb[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}

/** Per class id: 1 when the class is an `nn.Linear` or `nn.Embedding` subclass. */
export function quantizableClasses(tree: ModuleTree): Uint8Array {
  return Uint8Array.from(tree.classes, (c) => (c.mro.includes('Linear') || c.mro.includes('Embedding') ? 1 : 0));
}

/** c-t `is_narrow_match`: some target matches the module, none matches its parent or a direct child. */
function isNarrowMatch(tree: ModuleTree, index: MatchIndex, targets: readonly CompiledPattern[], m: number): boolean {
  const hits = targets.map((t) => patternHits(index, t).bits);
  const any = (i: number) => hits.some((b) => b[i] !== 0);
  if (!any(m)) return false;
  const parent = tree.parents[m]!;
  if (parent >= 0 && any(parent)) return false;
  for (let c = m + 1; c < tree.names.length && tree.parents[c]! >= m; c++) {
    if (tree.parents[c] === m && any(c)) return false;
  }
  return true;
}
