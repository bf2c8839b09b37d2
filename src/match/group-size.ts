/**
 * llm-compressor's group-size divisibility check (`validate_group_size_divisibility`):
 * for group and tensor-group weight strategies, a layer whose weight has at
 * least `group_size` columns but not a multiple of it is an error at
 * initialize. Block strategy is not checked. A layer with fewer columns than
 * `group_size` passes that check but stops llm-compressor later, when its
 * observer reshapes the weight into groups; quantc reports it up front.
 */
import { error, type Diagnostic } from '../diagnostics.js';
import { paramsOf, type ModuleTree } from '../model/module-tree.js';
import { compressNames } from './compress-names.js';
import type { SchemeAssignment, SchemeGroup } from './match.js';

/** A layer the check rejects. */
export interface GroupSizeOffender {
  readonly module: number;
  readonly columns: number;
  readonly groupSize: number;
  /** Index of the config group whose scheme it gets. */
  readonly group: number;
}

/** The first line of llm-compressor's error. */
export const GROUP_SIZE_HEADER = 'The following layers have weight column counts not divisible by group_size.';

/** Quantized group / tensor-group layers with a known `weight` shape whose column count fails `bad`. */
function groupLayers(tree: ModuleTree, assignment: SchemeAssignment, groups: readonly SchemeGroup[], bad: (columns: number, groupSize: number) => boolean): GroupSizeOffender[] {
  const out: GroupSizeOffender[] = [];
  const { modules, groups: groupOf } = assignment.quantized;
  for (let k = 0; k < modules.length; k++) {
    const w = groups[groupOf[k]!]!.scheme.weights;
    if (!w || (w.strategy !== 'group' && w.strategy !== 'tensor_group') || !w.group_size || w.group_size <= 0) continue;
    const weight = paramsOf(tree, modules[k]!).find((p) => p.name === 'weight');
    if (!weight || weight.shape.length < 2) continue;
    const columns = weight.shape[weight.shape.length - 1]!;
    if (bad(columns, w.group_size)) out.push({ module: modules[k]!, columns, groupSize: w.group_size, group: groupOf[k]! });
  }
  return out;
}

/** The layers that fail llm-compressor's check: at least `group_size` columns, not a multiple of it. */
export function groupSizeOffenders(tree: ModuleTree, assignment: SchemeAssignment, groups: readonly SchemeGroup[]): GroupSizeOffender[] {
  return groupLayers(tree, assignment, groups, (columns, gs) => columns >= gs && columns % gs !== 0);
}

/** Quantized layers narrower than their group (`columns < group_size`). */
export function narrowGroupLayers(tree: ModuleTree, assignment: SchemeAssignment, groups: readonly SchemeGroup[]): GroupSizeOffender[] {
  return groupLayers(tree, assignment, groups, (columns, gs) => columns < gs);
}

/** llm-compressor's per-layer lines: `  - {fqn} (columns={c}, group_size={g})`. */
export function groupSizeLines(tree: ModuleTree, offenders: readonly GroupSizeOffender[]): string[] {
  return offenders.map((o) => `  - ${tree.names[o.module]} (columns=${o.columns}, group_size=${o.groupSize})`);
}

/** One error per config group with offenders, its notes listing the layers (compressed into name patterns when many share a shape). */
function perGroup(tree: ModuleTree, groups: readonly SchemeGroup[], offenders: readonly GroupSizeOffender[], code: string, message: (count: number, group: string) => string): Diagnostic[] {
  return groups.flatMap((g, gi) => {
    const mine = offenders.filter((o) => o.group === gi);
    if (mine.length === 0) return [];
    const patterns = compressNames(
      mine.map((o) => tree.names[o.module]!),
      (i) => `${mine[i]!.columns}/${mine[i]!.groupSize}`,
    );
    const notes = patterns.map((p) => ({ message: `  - ${p.pattern} (columns=${p.key.split('/')[0]}, group_size=${p.key.split('/')[1]})` }));
    return [error(code, message(mine.length, g.name), g.origin, notes)];
  });
}

/**
 * The check as diagnostics: llm-compressor's (`group-size-not-divisible`,
 * nothing when `bypass_divisibility_checks` is set) and layers narrower
 * than their group (`group-size-exceeds-columns`, which bypassing does not
 * help).
 */
export function checkGroupSizeDivisibility(
  tree: ModuleTree,
  assignment: SchemeAssignment,
  groups: readonly SchemeGroup[],
  bypass = false,
): Diagnostic[] {
  const narrow = perGroup(tree, groups, narrowGroupLayers(tree, assignment, groups), 'group-size-exceeds-columns', (n, g) => {
    const it = n === 1 ? 'it' : 'them';
    return `${n} layer${n === 1 ? ' has' : 's have'} fewer weight columns than group_size in config group "${g}": llm-compressor accepts ${it} at initialize, then stops when the observer reshapes the weight into groups. Add ${it} to the modifier's ignore list, or use a smaller group_size.`;
  });
  if (bypass) return narrow;
  const divisibility = perGroup(
    tree,
    groups,
    groupSizeOffenders(tree, assignment, groups),
    'group-size-not-divisible',
    (n, g) =>
      `${GROUP_SIZE_HEADER} ${n} layer${n === 1 ? '' : 's'} of config group "${g}" would make llm-compressor stop at initialize; add them to the modifier's ignore list, or set bypass_divisibility_checks=True.`,
  );
  return [...narrow, ...divisibility];
}
