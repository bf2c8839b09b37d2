/**
 * What a GPTQModifier will cost, before anything runs: how many Hessians
 * (one per distinct input: q/k/v share one, gate/up share one, and every
 * expert's gate/up share one when all experts see every token), their
 * memory, the FLOPs of accumulating and solving them for the assumed
 * calibration set, and the weights read. llm-compressor accumulates one
 * Hessian per module; its accumulation cost is given for comparison.
 */
import { mlpSlices, rowBlockHessianFlops } from '../execute/forward/mlp-slices.js';
import { FUSED_LAYER_NAMES } from '../match/fused-groups.js';
import { paramsOf, type ModuleTree } from '../model/module-tree.js';
import { dtypeBytes, numel } from './estimate.js';
import { CALIBRATION_ASSUMPTIONS } from './pipeline.js';

/** The cost estimate of one GPTQModifier (plan JSON: the quantize step's `details.gptq`). */
export interface GptqCost {
  readonly modules: number;
  /** Distinct Hessians accumulated. */
  readonly hessians: number;
  /** Float32 bytes of all Hessians, and of the largest decoder layer's (`lm_head`'s counts with the last layer). */
  readonly hessianBytes: number;
  readonly peakLayerHessianBytes: number;
  /** Calibration tokens the FLOP figures assume. */
  readonly tokens: number;
  /**
   * `2·K²` per token and distinct Hessian; a dense MLP too large for one graph
   * accumulates its `down_proj` Hessian as upper-triangle row blocks, ≈ `K²`.
   */
  readonly accumulateFlops: number;
  /** The same with one Hessian per module, as llm-compressor accumulates them. */
  readonly perModuleAccumulateFlops: number;
  /** Cholesky factorizations (≈ 4/3·K³) and the column loop (≈ 2·R·K²) of every module. */
  readonly solveFlops: number;
  /** Bytes of the GPTQ targets' weights. */
  readonly weightBytes: number;
}

const GATE_UP = new Set(['gate_proj', 'up_proj', 'w1', 'w3']);

/** The key of a module's input: GPTQ targets with equal keys share one Hessian. */
export function inputKey(name: string, allExperts: boolean): string {
  const dot = name.lastIndexOf('.');
  const parent = name.slice(0, dot);
  const leaf = name.slice(dot + 1);
  const expert = /^(.*\.experts)\.\d+$/.exec(parent);
  if (expert && allExperts && GATE_UP.has(leaf)) return `${expert[1]}.*|gate_up`;
  const set = FUSED_LAYER_NAMES.find((s) => s.includes(leaf));
  return set ? `${parent}|${set.join(',')}` : name;
}

/**
 * The decoder layer whose step solves `name`: its own, or for `lm_head` the
 * last one (llm-compressor's last subgraph holds the last layer, the final
 * norm and `lm_head`); '' when neither.
 */
export function gptqLayerOf(tree: ModuleTree, name: string): string {
  const own = /^(.*?layers\.\d+)\./.exec(name)?.[1];
  if (own !== undefined) return own;
  if (!/(?:^|\.)lm_head$/.test(name)) return '';
  let last = '';
  let index = -1;
  for (const n of tree.names) {
    const m = /^(.*?layers\.(\d+))$/.exec(n);
    if (m && Number(m[2]) > index && !/vision|visual/.test(n)) {
      index = Number(m[2]);
      last = m[1]!;
    }
  }
  return last;
}

/**
 * FLOPs per token of accumulating the input Hessian of `name` (`rows × k`
 * weight): the executor runs a dense MLP whose float32 weights exceed one
 * graph as intermediate slices, and sums its `down_proj` Hessian as row
 * blocks of the upper triangle (see mlp-slices.ts).
 */
export function hessianFlopsPerToken(name: string, rows: number, k: number): number {
  if (/\.(?:mlp|feed_forward)\.down_proj$/.test(name)) {
    const { slices, hessianRows } = mlpSlices(rows, k);
    if (slices > 1) return rowBlockHessianFlops(k, hessianRows);
  }
  return 2 * k * k;
}

/** Estimates the GPTQ cost of `modules` (tree indices) for the assumed calibration set. */
export function gptqCost(tree: ModuleTree, modules: readonly number[], allExperts: boolean): GptqCost {
  const tokens = CALIBRATION_ASSUMPTIONS.samples * CALIBRATION_ASSUMPTIONS.seqLen;
  const distinct = new Map<string, { k: number; layer: string; flops: number }>();
  let perModule = 0;
  let solve = 0;
  let weightBytes = 0;
  let count = 0;
  for (const m of modules) {
    const w = paramsOf(tree, m).find((p) => p.name === 'weight');
    if (!w || w.shape.length !== 2) continue;
    const [rows, k] = w.shape as [number, number];
    count++;
    const name = tree.names[m]!;
    const layer = gptqLayerOf(tree, name);
    distinct.set(inputKey(name, allExperts), { k, layer, flops: hessianFlopsPerToken(name, rows, k) });
    perModule += 2 * k * k * tokens;
    solve += (4 / 3) * k ** 3 + 2 * rows * k * k;
    weightBytes += numel(w.shape) * dtypeBytes(w.dtype);
  }
  let hessianBytes = 0;
  let accumulate = 0;
  const byLayer = new Map<string, number>();
  for (const { k, layer, flops } of distinct.values()) {
    hessianBytes += 4 * k * k;
    accumulate += flops * tokens;
    byLayer.set(layer, (byLayer.get(layer) ?? 0) + 4 * k * k);
  }
  return {
    modules: count,
    hessians: distinct.size,
    hessianBytes,
    peakLayerHessianBytes: Math.max(0, ...byLayer.values()),
    tokens,
    accumulateFlops: accumulate,
    perModuleAccumulateFlops: perModule,
    solveFlops: Math.round(solve),
    weightBytes,
  };
}
