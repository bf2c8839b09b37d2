/**
 * The GPTQ solve on onnxruntime graphs (CPU provider) against the
 * JavaScript solve: the inverse-Hessian factor, failed factorizations, the
 * column loop of every weight kind, and stacked problems.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { QuantizationArgs } from '../../../src/ir/types.js';
import { roundBf16 } from '../../../src/execute/dtypes.js';
import { GraphSolver, solveMode, stackKey } from '../../../src/execute/gptq/graph-solve.js';
import { layerObjective } from '../../../src/execute/gptq/objective.js';
import { choleskyLower, identityPrepared, inverseHessianFactor, orderingOf, prepareHessian, solveGptq, type GptqProblem, type GptqSolution } from '../../../src/execute/gptq/solve.js';
import { fusedNvfp4GlobalScale, groupStats, scaleLayout } from '../../../src/execute/gptq/weight-qparams.js';
import type { KernelKind } from '../../../src/execute/rtn/weight-kernel.js';
import { GraphRuntime } from '../../../src/execute/runtime.js';
import { rng, W4G16 } from './solve-fixtures.js';

/** A Hessian 2·XᵀX/n from correlated inputs. */
function hessian(cols: number, seed: number): Float64Array {
  const r = rng(seed);
  const tokens = 4 * cols;
  const base = Array.from({ length: tokens }, () => r());
  const x = Float64Array.from({ length: tokens * cols }, (_, i) => base[Math.floor(i / cols)]! + r() * (1 + (i % cols) / cols));
  const h = new Float64Array(cols * cols);
  for (let t = 0; t < tokens; t++) for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j]! += (2 * x[t * cols + i]! * x[t * cols + j]!) / tokens;
  return h;
}

/** bf16 weights of `rows × cols` under `h`. */
function problem(rows: number, h: Float64Array, cols: number, seed: number, args: QuantizationArgs, kind: KernelKind): GptqProblem {
  const r = rng(seed);
  const weight = Float32Array.from({ length: rows * cols }, () => roundBf16(r() * 0.2));
  const stats = groupStats(weight, rows, cols, scaleLayout(args, rows, cols));
  return { weight, rows, cols, hessian: h, kind, args, dtype: 'BF16', stats, globalScale: kind === 'nvfp4' ? fusedNvfp4GlobalScale([stats], 'BF16') : null };
}

/** llm-compressor's sequence in float64: L = chol(H + λI); Hinv = cholesky_inverse(L); U = cholesky(Hinv, upper=True). */
function llmCompressorFactor(h: Float64Array, n: number, frac: number): Float64Array {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i]! / n;
  const a = Float64Array.from(h, (v, i) => (i % (n + 1) === 0 ? v + frac * mean : v));
  expect(choleskyLower(a, n)).toBe(true);
  // L⁻¹ by forward substitution, then Hinv = L⁻ᵀ·L⁻¹.
  const li = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    for (let i = c; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let p = c; p < i; p++) s -= a[i * n + p]! * li[p * n + c]!;
      li[i * n + c] = s / a[i * n + i]!;
    }
  }
  const hinv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let p = Math.max(i, j); p < n; p++) hinv[i * n + j]! += li[p * n + i]! * li[p * n + j]!;
  expect(choleskyLower(hinv, n)).toBe(true);
  // Upper U = Lᵀ of the lower factor.
  return Float64Array.from({ length: n * n }, (_, i) => hinv[(i % n) * n + Math.floor(i / n)]!);
}

const rt = new GraphRuntime('cpu');
afterAll(() => rt.dispose());

describe('GPTQ inverse-Hessian factor on graphs', () => {
  it("is llm-compressor's factor (Cholesky, Cholesky inverse, upper Cholesky) to float32 noise, over panels and padding", async () => {
    for (const [n, panel] of [[40, 16], [48, 16], [40, 128], [33, 8]] as const) {
      const h = hessian(n, n + panel);
      const ref = llmCompressorFactor(h, n, 0.01);
      const got = (await inverseHessianFactor(h, n, 0.01, new GraphSolver(rt, panel)))!;
      const js = (await inverseHessianFactor(h, n, 0.01))!;
      let scale = 0;
      for (const v of ref) scale = Math.max(scale, Math.abs(v));
      for (let i = 0; i < n * n; i++) {
        expect(Math.abs(got[i]! - ref[i]!), `${n}/${panel} entry ${i}`).toBeLessThan(2e-5 * scale);
        expect(Math.abs(got[i]! - js[i]!)).toBeLessThan(2e-5 * scale);
        if (Math.floor(i / n) > i % n) expect(got[i]).toBe(0);
      }
    }
  });

  it('factors Hessians of different widths in one batch, each as alone', async () => {
    const solver = new GraphSolver(rt, 16);
    const sizes = [40, 25, 48, 16];
    const hs = sizes.map((n, i) => hessian(n, 60 + i));
    const batch = solver.batch(sizes.length);
    const together = await Promise.all(hs.map((h, i) => prepareHessian(h, sizes[i]!, i % 2 ? 'weight' : null, { blockSize: 8, dampeningFrac: 0.01 }, batch)));
    for (let i = 0; i < sizes.length; i++) {
      const alone = await prepareHessian(hs[i]!, sizes[i]!, i % 2 ? 'weight' : null, { blockSize: 8, dampeningFrac: 0.01 }, solver);
      expect(together[i]!.fellBack).toBe(false);
      expect(together[i]!.hinv).toEqual(alone.hinv);
    }
  });

  it('detects a failed factorization (a pivot that is not positive) in any panel', async () => {
    const n = 40;
    const h = hessian(n, 2);
    const solver = new GraphSolver(rt, 16);
    for (const at of [0, 20, 39]) {
      // An indefinite matrix: one column a large multiple of another's correlations.
      const bad = Float64Array.from(h);
      bad[at * n + at] = -1;
      expect(await inverseHessianFactor(bad, n, 0.01, solver)).toBeNull();
    }
    const prep = await prepareHessian(Float64Array.from(h, (v, i) => (i === 5 * 41 ? -1 : v)), n, null, { blockSize: 8, dampeningFrac: 0.01 }, solver);
    expect(prep.fellBack).toBe(true);
  });
});

describe('GPTQ column loop on graphs', () => {
  const settings = { blockSize: 8, dampeningFrac: 0.01 };
  const cases: [string, Partial<QuantizationArgs>, KernelKind][] = [
    ['int4 group', {}, 'int'],
    ['int4 group, static order', { actorder: 'weight' }, 'int'],
    ['int4 group, group order', { actorder: 'group' }, 'int'],
    ['int4 channel, asymmetric', { strategy: 'channel', group_size: null, symmetric: false }, 'int'],
    ['int8 channel', { num_bits: 8, strategy: 'channel', group_size: null }, 'int'],
    ['int4 group, asymmetric, static order', { symmetric: false, actorder: 'weight' }, 'int'],
    ['int4 tensor', { strategy: 'tensor', group_size: null }, 'int'],
    ['int4 block 4×8', { strategy: 'block', group_size: null, block_structure: [4, 8] }, 'int'],
    ['fp8 channel', { type: 'float', num_bits: 8, strategy: 'channel', group_size: null }, 'fp8'],
    ['fp8 block 4×16', { type: 'float', num_bits: 8, strategy: 'block', group_size: null, block_structure: [4, 16] }, 'fp8'],
    ['nvfp4', { type: 'float', num_bits: 4, strategy: 'tensor_group', group_size: 16 }, 'nvfp4'],
  ];
  const cols = 44;
  const h = hessian(cols, 11);
  // Dead column 7: zeroed in the result.
  for (let j = 0; j < cols; j++) h[7 * cols + j] = h[j * cols + 7] = 0;
  for (const [name, change, kind] of cases) {
    it(`agrees with the JavaScript solve: ${name}`, async () => {
      const p = problem(20, h, cols, 5, { ...W4G16, ...change } as QuantizationArgs, kind);
      const solver = new GraphSolver(rt, 16);
      const prep = await prepareHessian(h, cols, orderingOf(p.args), settings, solver);
      expect(prep.fellBack).toBe(false);
      const js = await solveGptq(p, settings, undefined, prep);
      const [g] = await solver.solve([p], settings, prep);
      let same = 0;
      for (let i = 0; i < js.weight.length; i++) if (js.weight[i] === g!.weight[i]) same++;
      // The same factor and arithmetic in another update order: a rare code flips where a value sits on a rounding tie.
      expect(same / js.weight.length).toBeGreaterThan(0.98);
      const ratio = layerObjective(p.weight, g!.weight, h, p.rows, cols) / layerObjective(p.weight, js.weight, h, p.rows, cols);
      expect(Math.abs(ratio - 1)).toBeLessThan(0.01);
      expect(Math.abs(g!.loss / js.loss - 1)).toBeLessThan(0.02);
      for (let r = 0; r < p.rows; r++) expect(g!.weight[r * cols + 7]).toBe(0);
      expect(g!.qparams.scale).toEqual(js.qparams.scale);
      expect(g!.gIdx).toEqual(js.gIdx);
    });
  }

  it('is round-to-nearest after a failed factorization, as the JavaScript solve', async () => {
    const p = problem(6, h, cols, 3, W4G16, 'int');
    const bad = Float64Array.from(h, (v, i) => (i === 3 * (cols + 1) ? -1 : v));
    const solver = new GraphSolver(rt, 16);
    const prep = await prepareHessian(bad, cols, null, settings, solver);
    const [g] = await solver.solve([p], settings, prep);
    const js = await solveGptq({ ...p, hessian: bad }, settings);
    expect(js.fellBack).toBe(true);
    expect(g!.fellBack).toBe(true);
    expect([...g!.weight]).toEqual([...js.weight]);
  });

  it('rounds to nearest with the identity factor as the JavaScript solve does with H = I (the coverage policy)', async () => {
    const eye = Float64Array.from({ length: cols * cols }, (_, i) => (i % (cols + 1) === 0 ? 1 : 0));
    for (const change of [{}, { actorder: 'weight' }, { actorder: 'group' }] as Partial<QuantizationArgs>[]) {
      const args = { ...W4G16, ...change } as QuantizationArgs;
      const p = problem(7, eye, cols, 8, args, 'int');
      const [g] = await new GraphSolver(rt, 16).solve([p], settings, identityPrepared(cols, orderingOf(args)));
      const js = await solveGptq(p, { ...settings, dampeningFrac: 0 });
      expect([...g!.weight]).toEqual([...js.weight]);
      expect(g!.gIdx).toEqual(js.gIdx);
    }
  });

  it('solves stacked modules (and row chunks of them) as it solves each alone', async () => {
    for (const change of [{ actorder: 'weight' }, { actorder: 'group', symmetric: false }] as Partial<QuantizationArgs>[]) {
      const args = { ...W4G16, ...change } as QuantizationArgs;
      const ps = [problem(12, h, cols, 21, args, 'int'), problem(5, h, cols, 22, args, 'int'), problem(9, h, cols, 23, args, 'int')];
      expect(new Set(ps.map(stackKey)).size).toBe(1);
      const alone = new GraphSolver(rt, 16);
      const prep = await prepareHessian(h, cols, orderingOf(args), settings, alone);
      const each: GptqSolution[] = [];
      for (const p of ps) each.push((await alone.solve([p], settings, prep))[0]!);
      // Whole stack in one run, then runs of 7 rows that cut modules apart.
      for (const solver of [alone, new GraphSolver(rt, 16, 7 * 4 * cols)]) {
        const stacked = await solver.solve(ps, settings, prep);
        stacked.forEach((s, i) => {
          expect(s.weight).toEqual(each[i]!.weight);
          expect(s.loss).toBeCloseTo(each[i]!.loss, 6);
          expect(s.qparams.scale).toEqual(each[i]!.qparams.scale);
          expect(s.gIdx).toEqual(each[i]!.gIdx);
        });
      }
    }
  });

  it('factors and solves same-shaped problems under different Hessians in one batch, as each alone', async () => {
    const solver = new GraphSolver(rt, 16);
    const args = { ...W4G16, actorder: 'weight' } as QuantizationArgs;
    const hs = [hessian(cols, 31), hessian(cols, 32), Float64Array.from(hessian(cols, 33), (v, i) => (i === 9 * (cols + 1) ? -1 : v)), hessian(cols, 34)];
    const batch = solver.batch(hs.length);
    const preps = await Promise.all(hs.map((hh) => prepareHessian(hh, cols, orderingOf(args), settings, batch)));
    // The third cannot be factored: it alone falls back.
    expect(preps.map((p) => p.fellBack)).toEqual([false, false, true, false]);
    const stacks = hs.map((hh, i) => ({ problems: [problem(6, hh, cols, 40 + i, args, 'int'), problem(3, hh, cols, 50 + i, args, 'int')], prep: preps[i]! }));
    const together = await solver.solveAll(stacks, settings);
    // The same batch in runs of 4 rows per problem (a stack's modules cut apart).
    const chunked = await new GraphSolver(rt, 16, 4 * 4 * cols * hs.length).solveAll(stacks, settings);
    chunked.forEach((st, i) => st.forEach((s, j) => expect(s.weight).toEqual(together[i]![j]!.weight)));
    // Stacks of other row counts, padded with zero rows in the batch (as on CUDA).
    const uneven = stacks.map((st, i) => ({ ...st, problems: st.problems.slice(0, 1 + (i % 2)).map((p, j) => (i === 3 && j === 0 ? { ...p, weight: p.weight.subarray(0, 2 * cols), rows: 2 } : p)) }));
    const padded = await solver.solveAll(uneven, settings);
    for (let i = 0; i < hs.length; i++) {
      const each = await solver.solve(uneven[i]!.problems, settings, preps[i]!);
      padded[i]!.forEach((s, j) => {
        expect(s.weight).toEqual(each[j]!.weight);
        expect(s.loss).toBeCloseTo(each[j]!.loss, 6);
      });
    }
    for (let i = 0; i < hs.length; i++) {
      const alone = await prepareHessian(hs[i]!, cols, orderingOf(args), settings, solver);
      expect(alone.hinv).toEqual(preps[i]!.hinv);
      expect(alone.perm).toEqual(preps[i]!.perm);
      const each = await solver.solve(stacks[i]!.problems, settings, alone);
      together[i]!.forEach((s, j) => {
        expect(s.weight).toEqual(each[j]!.weight);
        expect(s.loss).toBeCloseTo(each[j]!.loss, 6);
        expect(s.fellBack).toBe(i === 2);
      });
    }
  });

  it('runs on graphs unless QUANTC_GPTQ_SOLVE says', () => {
    expect(solveMode(undefined)).toBe('graph');
    expect(solveMode('graph')).toBe('graph');
    expect(solveMode('js')).toBe('js');
  });
});
