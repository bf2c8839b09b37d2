/**
 * Fused layers must share one quantization: NVFP4 (tensor-group) weights of
 * `q/k/v`, `gate/up`, `q_a_proj/kv_a_proj_with_mqa` and `w1/w3` siblings
 * share a global scale in llm-compressor, and vLLM refuses fused shards with
 * different schemes. Mixed treatment is an error here, before calibration.
 */
import { error, type Diagnostic } from '../../diagnostics.js';
import type { QuantizationScheme } from '../../ir/types.js';
import { indexByName, type ModuleTree } from '../../model/module-tree.js';

/** compressed-tensors' `FUSED_LAYER_NAMES`. */
export const FUSED_LAYER_NAMES: readonly (readonly string[])[] = [
  ['gate_proj', 'up_proj'],
  ['q_proj', 'k_proj', 'v_proj'],
  ['q_a_proj', 'kv_a_proj_with_mqa'],
  ['w1', 'w3'],
];

/** Reports fused sibling sets where some members get tensor-group weights and others do not. */
export function checkFusedGroups(
  tree: ModuleTree,
  finalScheme: ReadonlyMap<number, { readonly scheme: QuantizationScheme }>,
): Diagnostic[] {
  const byName = indexByName(tree);
  const problems = new Map<string, { members: string; examples: string[]; count: number }>();
  const seenParents = new Set<string>();
  for (const [m, entry] of finalScheme) {
    if (entry.scheme.weights?.strategy !== 'tensor_group') continue;
    const name = tree.names[m]!;
    const dot = name.lastIndexOf('.');
    const parent = dot < 0 ? '' : name.slice(0, dot);
    const local = name.slice(dot + 1);
    for (const set of FUSED_LAYER_NAMES) {
      if (!set.includes(local)) continue;
      const key = `${parent}|${set.join(',')}`;
      if (seenParents.has(key)) continue;
      seenParents.add(key);
      const members = set.map((s) => (parent ? `${parent}.${s}` : s)).filter((n) => byName.has(n));
      const odd = members.filter((n) => finalScheme.get(byName.get(n)!)?.scheme.weights?.strategy !== 'tensor_group');
      if (odd.length === 0) continue;
      const problemKey = `${set.join(',')}|${odd.map((o) => o.slice(o.lastIndexOf('.') + 1)).join(',')}`;
      const p = problems.get(problemKey) ?? { members: set.join('/'), examples: [], count: 0 };
      p.count++;
      if (p.examples.length < 3) p.examples.push(`${parent} (${odd.map((o) => `"${o.slice(o.lastIndexOf('.') + 1)}" ${finalScheme.has(byName.get(o)!) ? 'has another scheme' : 'is not quantized'}`).join(', ')})`);
      problems.set(problemKey, p);
    }
  }
  return [...problems.values()].map((p) =>
    error(
      'fused-group-mixed',
      `Fused layers ${p.members} must share one NVFP4 weight global scale, but in ${p.count} module${p.count === 1 ? '' : 's'} some of them get no tensor-group scheme: ${p.examples.join('; ')}${p.count > p.examples.length ? '; …' : ''}. llm-compressor fails in calibration and vLLM refuses mixed fused shards: quantize all of them or none.`,
    ),
  );
}
