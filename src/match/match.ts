/**
 * compressed-tensors matching, reproduced exactly but computed per pattern
 * instead of per (module, pattern) pair: `match_named_modules` (first target
 * in list order records the match; ignored modules still count for the
 * target) and `apply_quantization_config` (which config group's scheme each
 * matched module receives, and which matched modules receive none).
 */
import type { QuantizationScheme } from '../ir/types.js';
import type { ModuleTree } from '../model/module-tree.js';
import { isCachedAttention } from './attention.js';
import { BY_CLASS, BY_NAME, matchIndex, patternHits, type MatchIndex } from './match-index.js';
import type { CompiledPattern } from './pattern.js';

/** What `match_named_modules(model, targets, ignore)` yields and records. */
export interface NamedModulesMatch {
  /** Yielded modules (matched by a target, not ignored), in `named_modules()` order. */
  readonly modules: readonly number[];
  /** Per yielded module, the index into `targets` of the first target that matched it. */
  readonly firstTarget: readonly number[];
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
  const targetBits = targets.map((t) => patternHits(index, t).bits);
  const firstIgnore = ignoreMask(index, ignore);
  const recorded = targets.map(() => 0);
  const modules: number[] = [];
  const firstTarget: number[] = [];
  const ignored: IgnoredModule[] = [];
  const n = tree.names.length;
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < targetBits.length; t++) {
      if (targetBits[t]![i] === 0) continue;
      recorded[t]!++;
      const ig = firstIgnore[i]!;
      if (ig === 0) {
        modules.push(i);
        firstTarget.push(t);
      } else ignored.push({ module: i, target: t, ignore: ig - 1 });
      break;
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
}

/** A matched module and the config group whose scheme it gets (or would get). */
export interface ModuleScheme {
  readonly module: number;
  /** Index into the `groups` given to `assignSchemes`. */
  readonly group: number;
  /** Index into `SchemeAssignment.targets`: the target that decided the scheme. */
  readonly target: number;
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
  readonly quantized: readonly ModuleScheme[];
  /** Cached-attention modules matched narrowly: they receive the scheme's activation (query) quantization. */
  readonly attention: readonly ModuleScheme[];
  /** Matched, not ignored, yet no scheme attached (MoE blocks, fused experts, non-Linear routers, …). */
  readonly skipped: readonly ModuleScheme[];
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
  const bits = patterns.map((p) => patternHits(index, p).bits);
  const precedence = patterns.map((_, i) => i).sort((a, b) => comparePrecedence(patterns[a]!.text, patterns[b]!.text));
  const quantizable = quantizableClasses(tree);
  const quantized: ModuleScheme[] = [];
  const attention: ModuleScheme[] = [];
  const skipped: ModuleScheme[] = [];
  for (const m of match.modules) {
    const target = winningTarget(precedence, bits, m);
    const entry = { module: m, group: targets[target]!.group, target };
    if (quantizable[tree.classIds[m]!] === 1) quantized.push(entry);
    else if (isCachedAttention(tree, index, m) && isNarrowMatch(tree, index, groups[entry.group]!.targets, m)) attention.push(entry);
    else skipped.push(entry);
  }
  return { targets, match, quantized, attention, skipped };
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

/** First target in precedence order that matches by name, else the first that matches by class. */
function winningTarget(precedence: readonly number[], bits: readonly Uint8Array[], m: number): number {
  for (const t of precedence) if ((bits[t]![m]! & BY_NAME) !== 0) return t;
  for (const t of precedence) if ((bits[t]![m]! & BY_CLASS) !== 0) return t;
  throw new Error(`module ${m} was yielded without a matching target`);
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
