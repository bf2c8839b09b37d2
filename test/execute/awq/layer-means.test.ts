import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { QuantizationArgs } from '../../../src/ir/types.js';
import { divideRows, layerMeans, scaleColumns, type BalanceWeight } from '../../../src/execute/awq/awq-scales.js';
import { roundBf16 } from '../../../src/execute/dtypes.js';

/**
 * llm-compressor's `_compute_layer_means` as written there: the whole
 * normalised weight `|W| / (chunk max + 1e-6)` in the weight dtype, then its
 * column sums over every layer's rows in order (float64), over the row count.
 */
function reference(layers: readonly BalanceWeight[], round: (x: number) => number): Float64Array {
  const quantized = layers.filter((l) => l.args !== null);
  const totals = new Float64Array(layers[0]!.cols);
  for (const { rows, cols, data, args: a } of quantized) {
    const norm = new Float32Array(data.length);
    const chunks: number[][] = [];
    if (!a) continue;
    if (a.strategy === 'tensor') chunks.push(Array.from({ length: data.length }, (_, i) => i));
    else if (a.strategy === 'channel') for (let r = 0; r < rows; r++) chunks.push(Array.from({ length: cols }, (_, c) => r * cols + c));
    else if (a.strategy === 'group') for (let s = 0; s < data.length; s += a.group_size!) chunks.push(Array.from({ length: a.group_size! }, (_, i) => s + i));
    else {
      const [bh, bw] = a.block_structure!;
      for (let r0 = 0; r0 < rows; r0 += bh!)
        for (let c0 = 0; c0 < cols; c0 += bw!) {
          const chunk: number[] = [];
          for (let r = r0; r < Math.min(r0 + bh!, rows); r++) for (let c = c0; c < Math.min(c0 + bw!, cols); c++) chunk.push(r * cols + c);
          chunks.push(chunk);
        }
    }
    for (const chunk of chunks) {
      const d = round(Math.max(0, ...chunk.map((i) => Math.abs(data[i]!))) + 1e-6);
      for (const i of chunk) norm[i] = round(Math.abs(data[i]!) / d);
    }
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) totals[c]! += norm[r * cols + c]!;
  }
  const count = quantized.reduce((n, l) => n + l.rows, 0);
  return totals.map((v) => v / count);
}

const args = (over: Partial<QuantizationArgs>): QuantizationArgs => ({ num_bits: 4, type: 'int', symmetric: false, strategy: 'group', group_size: 4, block_structure: null, dynamic: false, actorder: null, observer: 'minmax', ...over }) as QuantizationArgs;

describe('AWQ layer means', () => {
  it('equal the whole normalised weight summed column by column, for every strategy and several layers', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.array(fc.record({ rows: fc.integer({ min: 1, max: 6 }), kind: fc.constantFrom('tensor', 'channel', 'group', 'block', 'none'), seed: fc.integer() }), { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 5 }),
        (cols, specs, width) => {
          const layers: BalanceWeight[] = specs.map(({ rows, kind, seed }) => {
            let s = seed >>> 0 || 7;
            const data = Float32Array.from({ length: rows * cols }, () => roundBf16(((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 6 - 3));
            const a =
              kind === 'none' ? null
              : kind === 'group' ? args({ strategy: 'group', group_size: width })
              : kind === 'block' ? args({ strategy: 'block', block_structure: [2, width] })
              : args({ strategy: kind as 'tensor' | 'channel' });
            return { data, rows, cols, args: a };
          });
          // A group size that does not divide the row runs across rows, as reshape(-1, group_size) does; it must divide the weight.
          for (const l of layers) if (l.args?.strategy === 'group' && l.data.length % width !== 0) return;
          if (layers.every((l) => !l.args)) return;
          expect(Array.from(layerMeans(layers, roundBf16))).toEqual(Array.from(reference(layers, roundBf16)));
        },
      ),
    );
  });
});

describe('AWQ weight scaling in bf16', () => {
  // Ties, values next to them, subnormals, the largest finite values, infinities and NaN: what the bits-at-once rounding must treat as roundBf16 does.
  const specials = [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 2 ** -130, -(2 ** -133), 3.3895313892515355e38, -3.4e38, Infinity, -Infinity, NaN, 0, -0];

  it('scaleColumns and divideRows equal the element-by-element roundBf16', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.integer(), (rows, cols, seed) => {
        let s = seed >>> 0 || 3;
        const next = (): number => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
        const data = Float32Array.from({ length: rows * cols }, (_, i) => (i < specials.length && next() < 0.5 ? specials[i]! : (next() - 0.5) * 2 ** Math.floor(next() * 40 - 20)));
        const scales = Float64Array.from({ length: cols }, () => 0.25 + next() * 3);
        const perElement = (f: (x: number) => number): ((x: number) => number) => (x) => f(x);
        // A wrapped roundBf16 is another function: the element-by-element path, the definition.
        expect(Array.from(scaleColumns(data, rows, cols, scales, roundBf16))).toEqual(Array.from(scaleColumns(data, rows, cols, scales, perElement(roundBf16))));
        const rowScales = Float64Array.from({ length: Math.max(1, rows - 1) }, () => 0.25 + next() * 3);
        expect(Array.from(divideRows(data, rows, cols, rowScales, roundBf16))).toEqual(Array.from(divideRows(data, rows, cols, rowScales, perElement(roundBf16))));
      }),
    );
  });
});
