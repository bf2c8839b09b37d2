import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readExperts } from '../src/execute/forward/moe.js';
import { WeightReader } from '../src/execute/forward/weights.js';
import { OverlayWeights } from '../src/execute/pipeline/overlay-weights.js';
import { openCheckpoint } from '../src/execute/safetensors-reader.js';
import type { FusedExpertsParam } from '../src/execute/types.js';
import { DATAFREE, unpackModel } from './execute/fixtures.js';

describe("propagation reads a GraniteMoE layer's replaced experts (stored fused as input_linear / output_linear)", () => {
  test('the replaced expert comes from the replacement, the others from the fused tensors', async () => {
    const dir = await unpackModel(join(DATAFREE, 'granitemoe', 'base'));
    const base = new WeightReader(await openCheckpoint(dir), 'bfloat16');
    const m = 'model.layers.0.block_sparse_moe';
    const fused: FusedExpertsParam[] = [
      { tensor: `${m}.experts.gate_up_proj`, expertsModule: `${m}.experts`, transposed: false, projections: ['gate_proj', 'up_proj'] },
      { tensor: `${m}.experts.down_proj`, expertsModule: `${m}.experts`, transposed: false, projections: ['down_proj'] },
    ];
    const [experts, hidden, inter] = [4, 128, 128];
    const before = await readExperts(base, m, experts, hidden, inter);
    const solved = { data: new Float32Array(inter * hidden).fill(0.5), rows: inter, cols: hidden };
    const overlay = new OverlayWeights(base, { linears: new Map([[`${m}.experts.1.up_proj`, solved]]), vectors: new Map() }, fused);
    expect(overlay.has(`${m}.input_linear.weight`)).toBe(false);
    const after = await readExperts(overlay, m, experts, hidden, inter);
    const slab = hidden * inter;
    expect(after.up.subarray(slab, 2 * slab).every((v) => v === 0.5)).toBe(true);
    expect(after.up.subarray(0, slab)).toEqual(before.up.subarray(0, slab));
    expect(after.up.subarray(2 * slab)).toEqual(before.up.subarray(2 * slab));
    expect(after.gate).toEqual(before.gate);
    expect(after.down).toEqual(before.down);
  });
});
