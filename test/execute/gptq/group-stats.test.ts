import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { groupStats, type ScaleLayout } from '../../../src/execute/gptq/weight-qparams.js';
import { HessianStore } from '../../../src/execute/gptq/hessians.js';

/** Element by element into the float32 arrays: the definition groupStats must keep. */
function reference(w: ArrayLike<number>, rows: number, cols: number, layout: ScaleLayout, columns?: ArrayLike<number>): { min: Float32Array; max: Float32Array } {
  const n = Math.ceil(rows / layout.height) * layout.groups;
  const min = new Float32Array(n).fill(Infinity);
  const max = new Float32Array(n).fill(-Infinity);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < cols; j++) {
      const v = w[r * cols + (columns ? columns[j]! : j)]!;
      const i = Math.floor(r / layout.height) * layout.groups + Math.floor(j / layout.width);
      if (v < min[i]!) min[i] = v;
      if (v > max[i]!) max[i] = v;
    }
  return { min, max };
}

const shapes = fc.record({ rows: fc.integer({ min: 1, max: 9 }), cols: fc.integer({ min: 1, max: 13 }), width: fc.integer({ min: 1, max: 13 }), height: fc.integer({ min: 1, max: 9 }), seed: fc.integer() });

describe('groupStats', () => {
  it('equals the element-by-element min and max for every layout, permuted or not, float64 values included', () => {
    fc.assert(
      fc.property(shapes, fc.boolean(), fc.boolean(), ({ rows, cols, width, height, seed }, permuted, wide) => {
        let s = seed >>> 0 || 1;
        const next = (): number => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 4 - 2;
        // Float64 values that are not float32 ones: the stored extremes are still the float32 roundings of the true ones.
        const w = wide ? Float64Array.from({ length: rows * cols }, next) : Float32Array.from({ length: rows * cols }, next);
        const layout = { groups: Math.ceil(cols / width), width, height };
        const columns = permuted ? Array.from({ length: cols }, (_, j) => cols - 1 - j) : undefined;
        const got = groupStats(w, rows, cols, layout, columns);
        const want = reference(w, rows, cols, layout, columns);
        expect(got.min).toEqual(want.min);
        expect(got.max).toEqual(want.max);
        expect(got.finite).toBe(true);
      }),
    );
  });

  it('says whether every element is finite', () => {
    const layout = { groups: 2, width: 2, height: 1 };
    for (const bad of [NaN, Infinity, -Infinity]) {
      const w = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8);
      w[5] = bad;
      expect(groupStats(w, 2, 4, layout).finite).toBe(false);
      expect(groupStats(w, 2, 4, layout, [3, 2, 1, 0]).finite).toBe(false);
    }
    expect(groupStats(Float32Array.of(-0, 0, 3.4e38, -3.4e38), 1, 4, layout).finite).toBe(true);
  });
});

describe('HessianStore finiteness', () => {
  const hess = (values: number[]): Record<string, { type: 'float32'; data: Float32Array; dims: number[] }> => ({ 'hess:a,b': { type: 'float32', data: Float32Array.from(values), dims: [2, 2] } });

  it('marks a sum non-finite when any folded value is, and keeps it so', () => {
    const store = new HessianStore();
    store.add(hess([1, 2, 2, 4]), 1);
    expect(store.sumOf('a')!.finite).toBe(true);
    store.add(hess([1, NaN, 2, 4]), 1);
    expect(store.sumOf('b')!.finite).toBe(false);
    store.add(hess([1, 2, 2, 4]), 1);
    expect(store.sumOf('a')!.finite).toBe(false);
  });

  it('checks row blocks as they are folded', () => {
    const store = new HessianStore();
    store.add({ 'hessrows:a|0': { type: 'float32', data: Float32Array.of(1, -Infinity), dims: [1, 2] } }, 1);
    expect(store.sumOf('a')!.finite).toBe(false);
    const ok = new HessianStore();
    ok.add({ 'hessrows:a|0': { type: 'float32', data: Float32Array.of(1, 2), dims: [1, 2] } }, 1);
    ok.add({ 'hessrows:a|1': { type: 'float32', data: Float32Array.of(3), dims: [1, 1] } }, 1);
    expect(ok.sumOf('a')!.finite).toBe(true);
    expect(Array.from(ok.sumOf('a')!.sum)).toEqual([1, 2, 2, 3]);
  });
});
