/**
 * Fused layers: sibling projections that vLLM runs as one matrix and that
 * NVFP4 calibration gives one shared global scale (`fuse_weight_observers`).
 * llm-compressor asserts that every member of such a group is quantized
 * TENSOR_GROUP when any is; vLLM refuses to load shards of one fused layer
 * with different schemes.
 */
import { error, warning, type Diagnostic } from '../diagnostics.js';
import type { ModuleTree } from '../model/module-tree.js';
import { compressNames } from './compress-names.js';
import type { Span } from '../source.js';
import type { SchemeAssignment, SchemeGroup } from './match.js';
import type { CompiledPattern } from './pattern.js';

/** Sibling names that form one fused layer (c-t `FUSED_LAYER_NAMES`). */
export const FUSED_LAYER_NAMES: readonly (readonly string[])[] = [
  ['gate_proj', 'up_proj'],
  ['q_proj', 'k_proj', 'v_proj'],
  ['q_a_proj', 'kv_a_proj_with_mqa'],
  ['w1', 'w3'],
];

const FUSED_LOCALS = FUSED_LAYER_NAMES.flat();
const DOTTED_LOCALS = FUSED_LOCALS.map((l) => `.${l}`);

/**
 * The fused-layer name `name` ends with, if any. Suffix tests instead of
 * slicing keep this cheap on 100k-module trees, where most names end in
 * something else.
 */
function fusedLocalName(name: string): string | undefined {
  for (let k = 0; k < FUSED_LOCALS.length; k++) {
    if (name.endsWith(DOTTED_LOCALS[k]!) || name === FUSED_LOCALS[k]) return FUSED_LOCALS[k];
  }
  return undefined;
}

/** One fused group found in a tree whose members are not treated alike. */
export interface MixedFusedGroup {
  readonly parent: number;
  readonly members: readonly string[];
  /** Per member: the config group whose scheme it gets, or -1 when unquantized. */
  readonly groups: readonly number[];
  /** True when some member is TENSOR_GROUP (NVFP4): llm-compressor fails; otherwise only vLLM does. */
  readonly tensorGroup: boolean;
}

/** Fused groups (all members present under one parent) whose members get different treatment. */
export function mixedFusedGroups(tree: ModuleTree, assignment: SchemeAssignment, groups: readonly SchemeGroup[]): MixedFusedGroup[] {
  const groupOf = new Int32Array(tree.names.length).fill(-1);
  assignment.quantized.modules.forEach((m, k) => (groupOf[m] = assignment.quantized.groups[k]!));
  const children = new Map<number, Map<string, number>>();
  tree.names.forEach((name, i) => {
    const local = fusedLocalName(name);
    if (local === undefined) return;
    const p = tree.parents[i]!;
    let map = children.get(p);
    if (!map) children.set(p, (map = new Map()));
    map.set(local, i);
  });
  const keys = groups.map((g) => JSON.stringify(g.scheme.weights) + JSON.stringify(g.scheme.input_activations));
  const schemeKey = (g: number) => (g < 0 ? 'none' : keys[g]!);
  const out: MixedFusedGroup[] = [];
  for (const [parent, map] of children) {
    for (const members of FUSED_LAYER_NAMES) {
      if (!members.every((m) => map.has(m))) continue;
      const gs = members.map((m) => groupOf[map.get(m)!]!);
      if (new Set(gs.map(schemeKey)).size <= 1) continue;
      const tensorGroup = gs.some((g) => g >= 0 && groups[g]!.scheme.weights?.strategy === 'tensor_group');
      out.push({ parent, members, groups: gs, tensorGroup });
    }
  }
  return out.sort((a, b) => a.parent - b.parent);
}

/**
 * Errors for fused groups with mixed NVFP4 treatment (llm-compressor's
 * assertion), warnings for other mixes (vLLM's load error), one per
 * distinct pattern of treatment, the parents compressed into name patterns.
 */
export function checkFusedGroups(
  tree: ModuleTree,
  assignment: SchemeAssignment,
  groups: readonly SchemeGroup[],
  ignore: readonly CompiledPattern[] = [],
): Diagnostic[] {
  const mixed = mixedFusedGroups(tree, assignment, groups);
  const buckets = new Map<string, MixedFusedGroup[]>();
  for (const m of mixed) {
    const key = `${m.members.join(',')}|${m.groups.join(',')}`;
    const bucket = buckets.get(key);
    if (bucket) bucket.push(m);
    else buckets.set(key, [m]);
  }
  const out: Diagnostic[] = [];
  for (const list of buckets.values()) {
    const first = list[0]!;
    const where = compressNames(list.map((m) => tree.names[m.parent]!))
      .map((g) => g.pattern)
      .join(', ');
    const members = `(${first.members.map((m) => `'${m}'`).join(', ')})`;
    const treatment = first.members.map((m, i) => `${m}: ${first.groups[i]! < 0 ? 'not quantized' : `"${groups[first.groups[i]!]!.name}"`}`).join(', ');
    const span = ignoreSpan(tree, assignment, ignore, first);
    if (first.tensorGroup) {
      const unquantized = first.groups.some((g) => g < 0);
      const why = unquantized ? 'have no weight observer' : 'have non-TENSOR_GROUP quantization';
      out.push(
        error(
          'fused-group-mixed-nvfp4',
          `Some layers in fused group: ${members} ${why}, need all fused layers to have same quantization: under ${where} (${list.length} group${list.length === 1 ? '' : 's'}; ${treatment}). NVFP4 shares one global scale across the fused layers, so quantize all of them alike or ignore all of them.`,
          span,
        ),
      );
    } else {
      out.push(
        warning(
          'fused-group-mixed-schemes',
          `The fused layers ${members} under ${where} get different quantization (${treatment}); vLLM runs them as one layer and refuses to load shards with different schemes.`,
          span,
        ),
      );
    }
  }
  return out;
}

/** Where to point: the ignore entry that removed an unquantized member of the group, when one did. */
function ignoreSpan(tree: ModuleTree, assignment: SchemeAssignment, ignore: readonly CompiledPattern[], group: MixedFusedGroup): Span | undefined {
  const prefix = `${tree.names[group.parent]!}.`;
  for (const ig of assignment.match.ignored) {
    const name = tree.names[ig.module]!;
    if (name.startsWith(prefix) && group.members.includes(name.slice(prefix.length))) return ignore[ig.ignore]?.origin;
  }
  return undefined;
}
