/**
 * Slicing one projection out of a fused experts slab (weight-source.ts):
 * slabs stored `[in, out]` are transposed in tiles, one element-sized word
 * at a time; checked against a plain byte-by-byte transposition for every
 * element width and for shapes that do not fill whole tiles.
 */
import { describe, expect, test } from 'vitest';
import { transposedSlice, weightRange, type WeightSource } from '../../src/execute/weight-source.js';
import type { SafetensorsDtype } from '../../src/execute/dtypes.js';

function source(dtype: SafetensorsDtype, rows: number, cols: number, projections: number, projection: number, transposed: boolean): WeightSource {
  const d1 = transposed ? cols : rows * projections;
  const d2 = transposed ? rows * projections : cols;
  const param = { tensor: 'experts.gate_up_proj', expertsModule: 'experts', transposed, projections: ['gate_proj', 'up_proj'].slice(0, projections) };
  return { entry: { name: 'experts.gate_up_proj', dtype, shape: [4, d1, d2], file: 'model.safetensors', offset: 1000, byteLength: 0 }, dtype, shape: [rows, cols], fused: { param, expert: 2, projection } };
}

describe('fused experts slices', () => {
  for (const [dtype, el] of [
    ['BF16', 2],
    ['F32', 4],
    ['F8_E4M3', 1],
  ] as const) {
    test(`${dtype}: a projection stored [in, out] comes out [out, in], in tiles or not`, () => {
      for (const [rows, cols, projections] of [
        [3, 5, 2],
        [67, 130, 2],
        [129, 65, 1],
      ] as const) {
        for (let p = 0; p < projections; p++) {
          const d2 = rows * projections;
          const slab = Uint8Array.from({ length: cols * d2 * el }, (_, i) => (i * 31 + 7) & 255);
          const want = new Uint8Array(rows * cols * el);
          for (let i = 0; i < cols; i++) for (let o = 0; o < rows; o++) want.set(slab.subarray((i * d2 + p * rows + o) * el, (i * d2 + p * rows + o + 1) * el), (o * cols + i) * el);
          expect(Buffer.from(transposedSlice(source(dtype, rows, cols, projections, p, true), slab)).equals(Buffer.from(want)), `${rows}×${cols} projection ${p}`).toBe(true);
        }
      }
    });
  }

  test('a projection stored [out, in] is one file range: its rows of the expert slab', () => {
    // Expert 2 of [4, 2·6, 10] bf16: slabs of 240 bytes; up_proj is the second half of its slab.
    expect(weightRange(source('BF16', 6, 10, 2, 1, false))).toMatchObject({ offset: 1000 + 2 * 240 + 120, byteLength: 120 });
    expect(weightRange(source('BF16', 6, 10, 2, 1, true))).toBeNull();
  });
});
