/**
 * llm-compressor's group-size divisibility check
 * (`group_size_validation.py`), run at plan time instead of after hours of
 * calibration: for group and tensor-group weight strategies, a layer whose
 * column count is at least the group size but not a multiple of it fails.
 */
import { error, type Diagnostic } from '../../diagnostics.js';
import type { QuantizationScheme } from '../../ir/types.js';
import type { ModuleTree } from '../../model/module-tree.js';
import { rows, type ModifierMatch } from '../lower.js';

/** Checks every module a modifier attaches a group-strategy weight scheme to. */
export function checkDivisibility(
  tree: ModuleTree,
  matches: readonly ModifierMatch[],
  finalScheme: ReadonlyMap<number, { readonly modifier: number; readonly scheme: QuantizationScheme }>,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const match of matches) {
    if (match.modifier.args.bypass_divisibility_checks === true) continue;
    const lines: string[] = [];
    for (const q of rows(match.assignment.quantized)) {
      const w = match.groups[q.group]!.scheme.weights;
      if (!w || (w.strategy !== 'group' && w.strategy !== 'tensor_group') || !w.group_size) continue;
      if (finalScheme.get(q.module)?.modifier !== match.modifier.index) continue;
      const weight = weightShape(tree, q.module);
      if (!weight) continue;
      const columns = weight[weight.length - 1]!;
      if (columns >= w.group_size && columns % w.group_size !== 0) {
        lines.push(`  - ${tree.names[q.module]} (columns=${columns}, group_size=${w.group_size})`);
      }
    }
    if (lines.length === 0) continue;
    out.push(
      error(
        'group-size-indivisible',
        `The following layers have weight column counts not divisible by group_size. Add these layer names to the modifier's \`ignore\` list and re-run, or set bypass_divisibility_checks=True:\n${lines.join('\n')}`,
        match.modifier.origin,
      ),
    );
  }
  return out;
}

function weightShape(tree: ModuleTree, m: number): readonly number[] | undefined {
  for (let p = tree.paramStart[m]!; p < tree.paramStart[m + 1]!; p++) {
    if (tree.params[p]!.name === 'weight') return tree.params[p]!.shape;
  }
  return undefined;
}
