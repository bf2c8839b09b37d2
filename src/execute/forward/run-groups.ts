/**
 * Batches grouped into graph runs: consecutive batches of one sequence
 * length share a run while it stays within a bound, so that what a run
 * costs (onnxruntime's per-operator host work, statistics crossing the bus)
 * is paid once for several. The calibration pass joins token batches
 * (calibrate.ts: joinBatches), the sequential pipeline merges hidden states
 * (sequential.ts: mergeRuns).
 */

/**
 * `items` cut into groups of consecutive items of equal `seq`, each group
 * growing while `fits(rows, seq)` holds for its total rows (an item alone
 * may exceed it); with `lastAlone`, the last item is a group of its own (its
 * statistics are then the last batch's, for memoryless observers).
 */
export function groupRuns<T>(items: readonly T[], shapeOf: (item: T) => { readonly rows: number; readonly seq: number }, fits: (rows: number, seq: number) => boolean, lastAlone = false): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let rows = 0;
  let seq = 0;
  items.forEach((item, i) => {
    const s = shapeOf(item);
    if (group.length > 0 && (s.seq !== seq || !fits(rows + s.rows, s.seq) || (lastAlone && i === items.length - 1))) {
      groups.push(group);
      group = [];
      rows = 0;
    }
    group.push(item);
    rows += s.rows;
    seq = s.seq;
  });
  if (group.length > 0) groups.push(group);
  return groups;
}
