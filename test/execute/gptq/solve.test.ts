import { describe, expect, it } from 'vitest';
import type { QuantizationArgs } from '../../../src/ir/types.js';
import { layerObjective } from '../../../src/execute/gptq/objective.js';
import { blockedCholesky, choleskyLower, descendingOrder, inverseHessianFactor, lowerInverse, solveGptq, type GptqProblem } from '../../../src/execute/gptq/solve.js';
import { jsGemm, runtimeGemm } from '../../../src/execute/gptq/gemm.js';
import { solveByRowBlocks } from '../../../src/execute/gptq/row-blocks.js';
import { GraphRuntime } from '../../../src/execute/runtime.js';
import { groupStats, quantizeColumn, scaleLayout, weightQparams } from '../../../src/execute/gptq/weight-qparams.js';
import { roundBf16 } from '../../../src/execute/dtypes.js';
import { rng, W4G16 } from './solve-fixtures.js';

/** bf16 weights and a Hessian 2·XᵀX/n from correlated inputs. */
function problem(rows: number, cols: number, seed: number, args = W4G16, tokens = 4 * cols): GptqProblem {
  const r = rng(seed);
  const weight = Float32Array.from({ length: rows * cols }, () => roundBf16(r() * 0.2));
  const base = Array.from({ length: tokens }, () => r());
  const x = Float64Array.from({ length: tokens * cols }, (_, i) => base[Math.floor(i / cols)]! + r() * (1 + (i % cols) / cols));
  const h = new Float64Array(cols * cols);
  for (let t = 0; t < tokens; t++) for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j]! += (2 * x[t * cols + i]! * x[t * cols + j]!) / tokens;
  const stats = groupStats(weight, rows, cols, scaleLayout(args, rows, cols));
  return { weight, rows, cols, hessian: h, kind: 'int', args, dtype: 'BF16', stats, globalScale: null };
}

function rtn(p: GptqProblem): Float32Array {
  const layout = scaleLayout(p.args, p.rows, p.cols);
  const q = weightQparams(p.kind, p.args, layout, p.stats, p.dtype, p.globalScale);
  const out = new Float32Array(p.rows * p.cols);
  const col = new Float64Array(p.rows);
  const res = new Float64Array(p.rows);
  for (let c = 0; c < p.cols; c++) {
    for (let r = 0; r < p.rows; r++) col[r] = p.weight[r * p.cols + c]!;
    quantizeColumn(q, col, p.rows, Math.floor(c / layout.width), res);
    for (let r = 0; r < p.rows; r++) out[r * p.cols + c] = res[r]!;
  }
  return out;
}

const SETTINGS = { blockSize: 8, dampeningFrac: 0.01 };

describe('GPTQ solve', () => {
  it('factors the dampened inverse Hessian: UᵀU = (H + λI)⁻¹, U upper', async () => {
    const { hessian: h, cols: n } = problem(1, 40, 1);
    // Blocks of 16 over 40 columns: a partial last block, every path of the blocked kernels.
    const u = (await inverseHessianFactor(h, n, 0.01, jsGemm, 16))!;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += h[i * n + i]! / n;
    const a = Float64Array.from(h, (v, i) => (i % (n + 1) === 0 ? v + 0.01 * mean : v));
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) {
          let uu = 0;
          for (let m = 0; m <= Math.min(i, k); m++) uu += u[m * n + i]! * u[m * n + k]!;
          s += uu * a[k * n + j]!;
        }
        expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(2e-3);
      }
      for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
    }
  });

  it('blocked Cholesky and triangular inverse agree with the unblocked ones, in JavaScript and in onnxruntime', async () => {
    const { hessian: h, cols: n } = problem(1, 50, 9);
    const ref = Float64Array.from(h);
    expect(choleskyLower(ref, n)).toBe(true);
    const rt = new GraphRuntime('cpu');
    try {
      for (const gemm of [jsGemm, runtimeGemm(rt, 0)]) {
        const a = Float32Array.from(h);
        expect(await blockedCholesky(a, n, 16, gemm)).toBe(true);
        for (let i = 0; i < n * n; i++) expect(Math.abs(a[i]! - ref[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(ref[i]!)));
        const inv = await lowerInverse(a, n, 16, gemm);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let k = 0; k < n; k++) s += a[i * n + k]! * inv[k * n + j]!;
            expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-4);
          }
        }
      }
    } finally {
      await rt.dispose();
    }
    expect(await blockedCholesky(Float32Array.from([1, 2, 2, 1]), 2, 16, jsGemm)).toBe(false);
  });

  it('is round-to-nearest when the Hessian is the identity', async () => {
    const p = problem(6, 32, 2);
    const h = new Float64Array(32 * 32);
    for (let i = 0; i < 32; i++) h[i * 33] = 1;
    const s = await solveGptq({ ...p, hessian: h }, { blockSize: 8, dampeningFrac: 0 });
    expect([...s.weight]).toEqual([...rtn(p)]);
    expect(s.fellBack).toBe(false);
  });

  it('lowers the layer objective well below round-to-nearest, the same on onnxruntime', async () => {
    for (const seed of [3, 4, 5]) {
      const p = problem(16, 48, seed);
      const s = await solveGptq(p, SETTINGS);
      const g = layerObjective(p.weight, s.weight, p.hessian, p.rows, p.cols);
      const r = layerObjective(p.weight, rtn(p), p.hessian, p.rows, p.cols);
      expect(g).toBeLessThan(0.8 * r);
      const rt = new GraphRuntime('cpu');
      const onOrt = await solveGptq(p, SETTINGS, runtimeGemm(rt, 0));
      await rt.dispose();
      expect(layerObjective(p.weight, onOrt.weight, p.hessian, p.rows, p.cols) / g).toBeCloseTo(1, 2);
    }
  });

  it('writes only values on the scale grid, in column order, whatever the activation ordering', async () => {
    for (const actorder of [null, 'weight', 'group'] as const) {
      const p = problem(4, 32, 6, { ...W4G16, actorder });
      const s = await solveGptq(p, SETTINGS);
      const q = s.qparams;
      for (let r = 0; r < 4; r++) {
        for (let c = 0; c < 32; c++) {
          const g = s.gIdx ? s.gIdx[c]! : Math.floor(c / 16);
          const scale = actorder === 'group' ? roundBf16(q.scale[r * 2 + g]!) : q.scale[r * 2 + g]!;
          const code = s.weight[r * 32 + c]! / scale;
          expect(Math.abs(code - Math.round(code))).toBeLessThan(0.05);
          expect(Math.abs(code)).toBeLessThanOrEqual(8.02);
        }
      }
      if (actorder === 'group') {
        // Every group holds group_size columns, the ones with the largest Hessian diagonal first.
        const order = descendingOrder(Float64Array.from({ length: 32 }, (_, i) => (p.hessian as Float64Array)[i * 33]!));
        expect(order.slice(0, 16).every((c) => s.gIdx![c] === 0)).toBe(true);
      } else expect(s.gIdx).toBeNull();
    }
  });

  it('zeroes dead columns and falls back to round-to-nearest when the Hessian cannot be factored', async () => {
    const p = problem(4, 16, 7);
    const h = Float64Array.from(p.hessian);
    for (let j = 0; j < 16; j++) (h[3 * 16 + j] = 0), (h[j * 16 + 3] = 0);
    const dead = await solveGptq({ ...p, hessian: h }, SETTINGS);
    for (let r = 0; r < 4; r++) expect(dead.weight[r * 16 + 3]).toBe(0);
    const bad = Float64Array.from(h, (v, i) => (i % 17 === 0 ? -1 : v));
    const fallback = await solveGptq({ ...p, hessian: bad }, SETTINGS);
    expect(fallback.fellBack).toBe(true);
    expect([...fallback.weight]).toEqual([...rtn(p)]);
  });
});

describe('GPTQ in blocks of rows (tall weights: lm_head)', () => {
  const cases: [string, Partial<QuantizationArgs>][] = [
    ['group', {}],
    ['group, activation order group', { actorder: 'group' }],
    ['channel, asymmetric', { strategy: 'channel', group_size: null, symmetric: false }],
    ['tensor', { strategy: 'tensor', group_size: null }],
    ['block 4×8', { strategy: 'block', group_size: null, block_structure: [4, 8] }],
  ];
  for (const [name, change] of cases) {
    it(`gives the whole weight's solution: ${name}`, async () => {
      const p = problem(22, 32, 5, { ...W4G16, ...change } as QuantizationArgs);
      const whole = await solveGptq(p, SETTINGS);
      // 7 rows' worth of bytes: blocks of 7 rows (4 for the block strategy), a partial last one.
      const blocked = await solveByRowBlocks(p, SETTINGS, jsGemm, undefined, 7 * 4 * 32);
      expect(blocked.weight).toEqual(whole.weight);
      expect(blocked.loss).toBeCloseTo(whole.loss, 10);
      expect(blocked.qparams.scale).toEqual(whole.qparams.scale);
      expect(blocked.qparams.zeroPoint).toEqual(whole.qparams.zeroPoint);
      expect(blocked.gIdx).toEqual(whole.gIdx);
    });
  }
});
