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

/** The layers that fail the check: quantized modules with a known `weight` shape. */
export function groupSizeOffenders(tree: ModuleTree, assignment: SchemeAssignment, groups: readonly SchemeGroup[]): GroupSizeOffender[] {
  const out: GroupSizeOffender[] = [];
  const { modules, groups: groupOf } = assignment.quantized;
  for (let k = 0; k < modules.length; k++) {
    const w = groups[groupOf[k]!]!.scheme.weights;
    if (!w || (w.strategy !== 'group' && w.strategy !== 'tensor_group') || !w.group_size || w.group_size <= 0) continue;
    const weight = paramsOf(tree, modules[k]!).find((p) => p.name === 'weight');
    if (!weight || weight.shape.length < 2) continue;
    const columns = weight.shape[weight.shape.length - 1]!;
    if (columns >= w.group_size && columns % w.group_size !== 0) {
      out.push({ module: modules[k]!, columns, groupSize: w.group_size, group: groupOf[k]! });
    }
  }
  return out;
}

/** Quantized layers narrower than their group (`columns < group_size`, group and tensor-group strategies). */
export function narrowGroupLayers(tree: ModuleTree, assignment: SchemeAssignment, groups: readonly SchemeGroup[]): GroupSizeOffender[] {
  const out: GroupSizeOffender[] = [];
  const { modules, groups: groupOf } = assignment.quantized;
  for (let k = 0; k < modules.length; k++) {
    const w = groups[groupOf[k]!]!.scheme.weights;
    if (!w || (w.strategy !== 'group' && w.strategy !== 'tensor_group') || !w.group_size || w.group_size <= 0) continue;
    const weight = paramsOf(tree, modules[k]!).find((p) => p.name === 'weight');
    if (!weight || weight.shape.length < 2) continue;
    const columns = weight.shape[weight.shape.length - 1]!;
    if (columns < w.group_size) out.push({ module: modules[k]!, columns, groupSize: w.group_size, group: groupOf[k]! });
  }
  return out;
}

/** llm-compressor's per-layer lines: `  - {fqn} (columns={c}, group_size={g})`. */
export function groupSizeLines(tree: ModuleTree, offenders: readonly GroupSizeOffender[]): string[] {
  return offenders.map((o) => `  - ${tree.names[o.module]} (columns=${o.columns}, group_size=${o.groupSize})`);
}

/**
 * The check as a diagnostic: one error per config group with offenders,
 * its notes listing the layers (compressed into name patterns when many
 * share a shape), or nothing when `bypass_divisibility_checks` is set.
 */
export function checkGroupSizeDivisibility(
  tree: ModuleTree,
  assignment: SchemeAssignment,
  groups: readonly SchemeGroup[],
  bypass = false,
): Diagnostic[] {
  const narrow = narrowGroupLayers(tree, assignment, groups);
  const narrowErrors = groups.flatMap((g, gi) => {
    const mine = narrow.filter((o) => o.group === gi);
    if (mine.length === 0) return [];
    const patterns = compressNames(
      mine.map((o) => tree.names[o.module]!),
      (i) => `${mine[i]!.columns}/${mine[i]!.groupSize}`,
    );
    const notes = patterns.map((p) => ({ message: `  - ${p.pattern} (columns=${p.key.split('/')[0]}, group_size=${p.key.split('/')[1]})` }));
    return [
      error(
        'group-size-exceeds-columns',
        `${mine.length} layer${mine.length === 1 ? ' has' : 's have'} fewer weight columns than group_size in config group "${g.name}": llm-compressor accepts ${mine.length === 1 ? 'it' : 'them'} at initialize, then stops when the observer reshapes the weight into groups. Add ${mine.length === 1 ? 'it' : 'them'} to the modifier's ignore list, or use a smaller group_size.`,
        g.origin,
        notes,
      ),
    ];
  });
  if (bypass) return narrowErrors;
  const offenders = groupSizeOffenders(tree, assignment, groups);
  return [...narrowErrors, ...groups.flatMap((g, gi) => {
    const mine = offenders.filter((o) => o.group === gi);
    if (mine.length === 0) return [];
    const patterns = compressNames(
      mine.map((o) => tree.names[o.module]!),
      (i) => `${mine[i]!.columns}/${mine[i]!.groupSize}`,
    );
    const notes = patterns.map((p) => ({ message: `  - ${p.pattern} (columns=${p.key.split('/')[0]}, group_size=${p.key.split('/')[1]})` }));
    return [
      error(
        'group-size-not-divisible',
        `${GROUP_SIZE_HEADER} ${mine.length} layer${mine.length === 1 ? '' : 's'} of config group "${g.name}" would make llm-compressor stop at initialize; add them to the modifier's ignore list, or set bypass_divisibility_checks=True.`,
        g.origin,
        notes,
      ),
    ];
  })];
}
