/**
 * The plan's GPTQ estimates: accumulation FLOPs per distinct Hessian (a
 * 70B-class MLP, which runs as slices, sums its `down_proj` Hessian as
 * upper-triangle row blocks, ≈ K² per token rather than 2·K²), and the
 * peak memory of the last subgraph, which also holds `lm_head` (its weights,
 * and its Hessian when GPTQ targets it).
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mlpSlices, rowBlockHessianFlops } from '../../src/execute/forward/mlp-slices.js';
import type { GptqCost } from '../../src/plan/gptq-cost.js';
import type { Plan } from '../../src/plan/types.js';
import { planText } from './harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TOKENS = 512 * 2048;

function gptqRecipe(ignore: string): string {
  return `quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: ${ignore}\n`;
}

/** A Llama 3 config with the given widths, written where `loadModel` can read it. */
async function llamaConfig(hidden: number, inter: number, layers: number): Promise<string> {
  const base = JSON.parse(await readFile(`${ROOT}src/model/hub/meta-llama__Llama-3.1-8B.json`, 'utf8')) as Record<string, unknown>;
  const dir = await mkdtemp(join(tmpdir(), 'quantc-gptq-cost-'));
  const path = join(dir, 'config.json');
  await writeFile(path, JSON.stringify({ ...base, hidden_size: hidden, intermediate_size: inter, num_hidden_layers: layers, num_attention_heads: 64, num_key_value_heads: 8 }));
  return path;
}

function step(plan: Plan, action: string): Plan['steps'][number] {
  return plan.steps.find((s) => s.action === action)!;
}

describe('row-block Hessian FLOPs', () => {
  it('counts the upper triangle with its diagonal blocks: k² + k·rows when rows divides k', () => {
    expect(rowBlockHessianFlops(12, 4)).toBe(2 * (4 * 12 + 4 * 8 + 4 * 4));
    expect(rowBlockHessianFlops(12, 4)).toBe(12 * 12 + 12 * 4);
    expect(rowBlockHessianFlops(10, 4)).toBe(2 * (4 * 10 + 4 * 6 + 2 * 2));
    expect(rowBlockHessianFlops(8, 8)).toBe(2 * 8 * 8);
  });

  it('splits a 70B-class MLP and keeps an 8B one whole', () => {
    expect(mlpSlices(4096, 14336).slices).toBe(1);
    const big = mlpSlices(8192, 28672);
    expect(big.slices).toBe(3);
    expect(big.hessianRows).toBe(Math.floor(2 ** 28 / (4 * 28672)));
  });
});

describe('GPTQ cost in plans', () => {
  it('counts a split down_proj Hessian as ≈ K² FLOPs per token, every other distinct Hessian as 2·K²', async () => {
    const [hidden, inter, layers] = [8192, 28672, 2];
    const plan = (await planText('r.yaml', gptqRecipe('[lm_head]'), await llamaConfig(hidden, inter, layers))).plan;
    const cost = step(plan, 'quantize').details!.gptq as GptqCost;
    expect(cost.hessians).toBe(4 * layers);
    const down = rowBlockHessianFlops(inter, mlpSlices(hidden, inter).hessianRows);
    expect(down).toBeLessThan(1.1 * inter * inter);
    expect(cost.accumulateFlops).toBe(TOKENS * layers * (3 * 2 * hidden * hidden + down));
    // llm-compressor's one Hessian per module, full xᵀx each: q, k, v, o, gate, up over `hidden`, down over `inter`.
    expect(cost.perModuleAccumulateFlops).toBe(TOKENS * layers * (6 * 2 * hidden * hidden + 2 * inter * inter));
    expect(cost.hessianBytes).toBe(layers * 4 * (3 * hidden * hidden + inter * inter));
  });

  it('counts an 8B down_proj, one graph, as 2·K²', async () => {
    const plan = (await planText('r.yaml', gptqRecipe('[lm_head]'), 'meta-llama/Llama-3.1-8B')).plan;
    const cost = step(plan, 'quantize').details!.gptq as GptqCost;
    expect(cost.accumulateFlops).toBe(TOKENS * 32 * (3 * 2 * 4096 * 4096 + 2 * 14336 * 14336));
  });

  it('puts lm_head (weights, and its Hessian when GPTQ targets it) into the last subgraph’s peak', async () => {
    const targeted = (await planText('r.yaml', gptqRecipe('[]'), 'meta-llama/Llama-3.1-8B')).plan;
    const ignored = (await planText('r.yaml', gptqRecipe('[lm_head]'), 'meta-llama/Llama-3.1-8B')).plan;
    const [a, b] = [step(targeted, 'calibrate'), step(ignored, 'calibrate')];
    // The last layer carries the final norm and lm_head's 128,256 × 4,096 bf16 weights, so it is the largest.
    expect(a.details!.largestSubgraph).toBe('model.layers.31');
    expect(b.details!.largestSubgraph).toBe('model.layers.31');
    const layer = 2 * (4096 * (4096 + 2 * 1024 + 4096) + 3 * 4096 * 14336 + 2 * 4096);
    const hessians = 4 * (6 * 4096 * 4096 + 14336 * 14336);
    const batch = 2048 * 4096 * 4 * 2;
    const head = 2 * 4096 + 2 * 128256 * 4096;
    expect(b.estimate!.calibrationBytes).toBe(layer + hessians + batch + head);
    expect(a.estimate!.calibrationBytes! - b.estimate!.calibrationBytes!).toBe(4 * 4096 * 4096);
    expect((step(targeted, 'quantize').details!.gptq as GptqCost).peakLayerHessianBytes).toBe(4 * (3 * 4096 * 4096 + 14336 * 14336 + 4096 * 4096));
  });
});
