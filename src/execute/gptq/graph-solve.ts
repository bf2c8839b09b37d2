/**
 * The GPTQ solve on onnxruntime graphs (see solve-graphs.ts): the
 * inverse-Hessian factor and the column loop each run as one graph, and
 * JavaScript only lays out their inputs. Weights that share a prepared
 * Hessian and a quantization kind are solved as one problem with their rows
 * stacked: given the Hessian and the scales fixed up front, GPTQ's rows are
 * independent, so q/k/v (or every expert's gate/up under one shared
 * Hessian) cost one upload of `U` and one graph run.
 */
import { BufferPool } from '../buffer-pool.js';
import type { GraphRuntime } from '../runtime.js';
import { ROW_BLOCK_BYTES } from './row-blocks.js';
import { columnLoopGraph, columnLoopKey, inverseFactorGraph, type LoopKind } from './solve-graphs.js';
import { loopQparams, type FactorEngine, type FactorInput, type GptqProblem, type GptqSettings, type GptqSolution, type LoopQparams, type PreparedHessian } from './solve.js';

/** Which solve runs: graphs (the device path) or JavaScript with GEMMs on onnxruntime. */
export type SolveMode = 'graph' | 'js';

/**
 * The solve mode: `QUANTC_GPTQ_SOLVE=graph|js` forces one; otherwise
 * graphs, on CUDA and on the CPU alike (on a 2-core CPU the graphs solve a
 * TinyLlama-shaped layer in 6.9–10.2 s against 10.5–12.1 s in JavaScript;
 * the JavaScript solve holds less memory: 2.0 GiB peak against 4.1 GiB).
 */
export function solveMode(env: string | undefined = process.env.QUANTC_GPTQ_SOLVE): SolveMode {
  return env === 'js' ? 'js' : 'graph';
}

/** Bytes of scratch inputs a solver keeps between layers (see `GraphSolver.scratch`): a 1B layer's take ~350 MB. */
const SCRATCH_BYTES = 2 ** 30;

/** Panel width of the graph factorization. */
export const FACTOR_PANEL = 128;

/** The loop kind of a problem's qparams (the stacking key). */
function loopKind(q: LoopQparams, p: GptqProblem): LoopKind {
  const kind = q.qparams.kind;
  if (kind !== 'int' && kind !== 'fp8' && kind !== 'nvfp4') throw new Error(`${kind} weights are not supported by GPTQ`);
  return { kind, asymmetric: q.qparams.zeroPoint !== null, qmin: q.qparams.qmin, qmax: q.qparams.qmax, dtype: p.dtype };
}

/** Whether two problems can be solved stacked under one prepared Hessian. */
export function stackKey(p: GptqProblem): string {
  const a = p.args;
  return JSON.stringify([p.kind, p.dtype, p.cols, a.type, a.num_bits, a.symmetric, a.strategy, a.group_size, a.block_structure, a.actorder]);
}

/** One run of rows: rows `[r0, r1)` of problem `p`. */
interface Segment {
  readonly p: number;
  readonly r0: number;
  readonly r1: number;
}

/** Cuts the stacked rows of `rows` into runs of at most `limit` rows. */
function chunks(rows: readonly number[], limit: number): Segment[][] {
  const out: Segment[][] = [];
  let cur: Segment[] = [];
  let room = limit;
  rows.forEach((n, p) => {
    for (let r0 = 0; r0 < n; ) {
      const r1 = Math.min(n, r0 + room);
      cur.push({ p, r0, r1 });
      room -= r1 - r0;
      r0 = r1;
      if (room === 0) {
        out.push(cur);
        cur = [];
        room = limit;
      }
    }
  });
  if (cur.length > 0) out.push(cur);
  return out;
}

/** One stacked problem: modules sharing a prepared Hessian and a {@link stackKey}. */
export interface Stack {
  readonly problems: readonly GptqProblem[];
  readonly prep: PreparedHessian;
}

/** The GPTQ solve on graphs of one {@link GraphRuntime} (sessions cached per kind; shapes are symbolic). */
export class GraphSolver implements FactorEngine {
  constructor(
    readonly rt: GraphRuntime,
    readonly panel = FACTOR_PANEL,
    /** Bound on one graph run's float32 weight rows (tall weights and large stacks run in row chunks). */
    readonly bytes = ROW_BLOCK_BYTES,
    /**
     * Whether stacks of different row counts share a batched run, padded
     * with zero rows (default on CUDA, where a run's cost is its loop steps;
     * on the CPU the padding would be arithmetic).
     */
    readonly padRows = rt.device === 'cuda',
  ) {}

  /**
   * The runs' scratch inputs (Hessians, stacked weights, scales), kept for
   * the next layer's runs of their sizes: fresh memory is zeroed and mapped
   * by the kernel page by page on its first write, which took about as long
   * as filling it (a 1B layer's inputs are ~350 MB).
   */
  private readonly scratch = new BufferPool(SCRATCH_BYTES);

  /** `n` floats set to `value`: scratch memory of that size if some is free (see {@link scratch}). */
  private floats(n: number, value: number): Float32Array {
    const b = this.scratch.take(4 * n);
    const a = b ? new Float32Array(b.buffer, 0, n) : new Float32Array(n);
    if (b || value !== 0) a.fill(value);
    return a;
  }

  /** Gives scratch arrays back once their run is over. */
  private release(...arrays: (Float32Array | null)[]): void {
    for (const a of arrays) if (a) this.scratch.give(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }

  padded(k: number): number {
    return Math.ceil(k / this.panel) * this.panel;
  }

  factor(input: FactorInput): Promise<Float32Array | null> {
    return this.factorAll([input]).then((u) => u[0]!);
  }

  /**
   * Factors Hessians in one graph run (see {@link FactorEngine}); those
   * narrower than the widest are padded with the identity in front, so
   * their factor is the top-left corner of the padded one's.
   */
  async factorAll(inputs: readonly FactorInput[]): Promise<(Float32Array | null)[]> {
    const kmax = Math.max(...inputs.map((i) => i.k));
    // A slab holds a Hessian and a zero row and column, where padding rows point.
    const s = kmax + 1;
    const n = this.padded(kmax);
    const E = inputs.length;
    const h = this.floats(E * s * s, 0);
    const rows = new BigInt64Array(E * n);
    const diag = new Float32Array(E * n).fill(1);
    inputs.forEach((inp, e) => {
      const { k, h: src, scale } = inp;
      for (let i = 0; i < k; i++) {
        const from = i * k;
        const to = e * s * s + i * s;
        for (let j = 0; j < k; j++) h[to + j] = src[from + j]! * scale;
      }
      // Working row m + r (m = n − k identity rows first) is permuted row k − 1 − r (the reversal J).
      const m = n - k;
      for (let i = 0; i < n; i++) {
        if (i < m) {
          rows[e * n + i] = BigInt(e * s + s - 1);
          continue;
        }
        const j = k - 1 - (i - m);
        rows[e * n + i] = BigInt(e * s + (inp.cols ? inp.cols[j]! : j));
        diag[e * n + i] = inp.diag[j]!;
      }
    });
    const out = await this.rt.run(`gptq-factor-${this.panel}`, () => inverseFactorGraph(this.panel), {
      h: { type: 'float32', data: h, dims: [E, s, s] },
      rows: { type: 'int64', data: rows, dims: [E * n] },
      diag: { type: 'float32', data: diag, dims: [E, n] },
    }).finally(() => this.release(h));
    const u = out.u!.data as Float32Array;
    const ok = out.ok!.data as Int32Array;
    return inputs.map(({ k }, e) => {
      if (ok[e] !== 1) return null;
      const at = e * kmax * kmax;
      if (k === kmax) return u.subarray(at, at + k * k);
      const own = new Float32Array(k * k);
      for (let i = 0; i < k; i++) own.set(u.subarray(at + i * kmax, at + i * kmax + k), i * k);
      return own;
    });
  }

  /**
   * A {@link FactorEngine} that waits for `count` factorizations and runs
   * them as one batch (a layer's Hessians).
   */
  batch(count: number): FactorEngine {
    const pending: { input: FactorInput; done: (u: Float32Array | null) => void; fail: (e: unknown) => void }[] = [];
    return {
      factor: (input) =>
        new Promise((done, fail) => {
          pending.push({ input, done, fail });
          if (pending.length < count) return;
          this.factorAll(pending.map((p) => p.input)).then(
            (us) => pending.forEach((p, i) => p.done(us[i]!)),
            (e: unknown) => pending.forEach((p) => p.fail(e)),
          );
        }),
    };
  }

  /**
   * Solves `problems` (same columns, same {@link stackKey}) under `prep` as
   * one stacked problem; one solution per problem, as {@link solveGptq}
   * gives it.
   */
  async solve(problems: readonly GptqProblem[], settings: GptqSettings, prep: PreparedHessian): Promise<GptqSolution[]> {
    return (await this.solveAll([{ problems, prep }], settings))[0]!;
  }

  /**
   * Solves stacks of the same columns and {@link stackKey}, each under its
   * own Hessian, in the same graph runs (a leading batch axis). Stacks with
   * fewer rows are padded with zero rows (scale 1), which quantize to zero
   * with no error and move nothing.
   */
  async solveAll(stacks: readonly Stack[], settings: GptqSettings): Promise<GptqSolution[][]> {
    const first = stacks[0]!.problems[0]!;
    const K = first.cols;
    const E = stacks.length;
    for (const st of stacks) {
      if (st.prep.k !== K) throw new Error('GPTQ: batched problems differ in shape');
      for (const p of st.problems) if (p.cols !== K || stackKey(p) !== stackKey(first)) throw new Error('GPTQ: stacked problems differ in shape or scheme');
    }
    const qs = stacks.map((st) => st.problems.map((p) => loopQparams(p, st.prep)));
    const kind = loopKind(qs[0]![0]!, first);
    const block = Math.max(1, settings.blockSize);
    const groups = qs[0]![0]!.qparams.layout.groups;
    const u = E === 1 ? stacks[0]!.prep.hinv : new Float32Array(E * K * K);
    const perm = new BigInt64Array(E * K);
    const iperm = new BigInt64Array(E * K);
    const keep = new Float32Array(E * K).fill(1);
    const gcol = new BigInt64Array(E * K);
    stacks.forEach((st, e) => {
      if (E > 1) u.set(st.prep.hinv, e * K * K);
      for (let j = 0; j < K; j++) {
        const c = st.prep.perm ? st.prep.perm[j]! : j;
        perm[e * K + j] = BigInt(c);
        iperm[e * K + c] = BigInt(j);
        gcol[e * K + j] = BigInt(qs[e]![0]!.groupOf[j]!);
      }
      for (const j of st.prep.dead) keep[e * K + j] = 0;
    });
    const fixed = {
      u: { type: 'float32' as const, data: u, dims: [E, K, K] },
      perm: { type: 'int64' as const, data: perm, dims: [E, K] },
      iperm: { type: 'int64' as const, data: iperm, dims: [E, K] },
      keep: { type: 'float32' as const, data: keep, dims: [E, K] },
      gcol: { type: 'int64' as const, data: gcol, dims: [E, K] },
    };
    // Made on first use: a problem solved whole in one run keeps its rows where the run returned them instead.
    const weights = stacks.map((st) => st.problems.map((): Float32Array | undefined => undefined));
    const own = (e: number, p: number): Float32Array => (weights[e]![p] ??= new Float32Array(stacks[e]!.problems[p]!.rows * K));
    const losses = stacks.map((st) => st.problems.map(() => 0));
    const limit = Math.max(1, Math.floor(this.bytes / (4 * K * E)));
    const cuts = stacks.map((st) => chunks(st.problems.map((p) => p.rows), limit));
    const runs = Math.max(...cuts.map((c) => c.length));
    for (let c = 0; c < runs; c++) {
      const segsOf = (e: number): Segment[] => cuts[e]![c] ?? [];
      const R = Math.max(...stacks.map((_, e) => segsOf(e).reduce((n, s) => n + s.r1 - s.r0, 0)));
      const only = segsOf(0)[0];
      const whole = E === 1 && segsOf(0).length === 1 && only!.r1 - only!.r0 === stacks[0]!.problems[only!.p]!.rows;
      const w = whole ? stacks[0]!.problems[only!.p]!.weight : this.floats(E * R * K, 0);
      // Scales per group and row: row r of a problem uses scale row ⌊r / height⌋; padding rows scale 1.
      const s = this.floats(E * groups * R, 1);
      const z = kind.asymmetric ? this.floats(E * groups * R, 0) : null;
      stacks.forEach((st, e) => {
        let at = 0;
        for (const seg of segsOf(e)) {
          const p = st.problems[seg.p]!;
          const q = qs[e]![seg.p]!.qparams;
          if (!whole) w.set(p.weight.subarray(seg.r0 * K, seg.r1 * K), (e * R + at) * K);
          const gs = q.globalScale;
          for (let r = seg.r0; r < seg.r1; r++) {
            const base = Math.floor(r / q.layout.height) * groups;
            const to = e * groups * R + at + r - seg.r0;
            for (let g = 0; g < groups; g++) {
              const v = q.scale[base + g]!;
              s[to + g * R] = gs === null ? v : Math.fround(v / gs);
              if (z) z[to + g * R] = q.zeroPoint![base + g]!;
            }
          }
          at += seg.r1 - seg.r0;
        }
      });
      // One problem's rows alone: the solution is copied from the device straight to where it belongs.
      const into = E === 1 && segsOf(0).length === 1 ? { q: { type: 'float32' as const, data: own(0, only!.p).subarray(only!.r0 * K, only!.r1 * K), dims: [1, R, K] } } : undefined;
      const out = await this.rt.run(
        columnLoopKey(kind, block),
        () => columnLoopGraph(kind, block),
        {
          ...fixed,
          w: { type: 'float32', data: w, dims: [E, R, K] },
          s: { type: 'float32', data: s, dims: [E, groups, R] },
          ...(z ? { z: { type: 'float32' as const, data: z, dims: [E, groups, R] } } : {}),
        },
        undefined,
        into,
      ).finally(() => this.release(whole ? null : w, s, z));
      const q = out.q!.data as Float32Array;
      const loss = out.loss!.data as Float32Array;
      stacks.forEach((_, e) => {
        let at = 0;
        for (const seg of segsOf(e)) {
          const n = seg.r1 - seg.r0;
          const rows = q.subarray((e * R + at) * K, (e * R + at + n) * K);
          // Unless written in place: a problem solved whole in this run keeps its rows as a view (no copy into fresh memory).
          if (!into) {
            if (n === stacks[e]!.problems[seg.p]!.rows) weights[e]![seg.p] = rows;
            else own(e, seg.p).set(rows, seg.r0 * K);
          }
          for (let r = 0; r < n; r++) losses[e]![seg.p]! += loss[e * R + at + r]! / 2;
          at += n;
        }
      });
    }
    return stacks.map((st, e) => st.problems.map((_, i) => ({ weight: own(e, i), loss: losses[e]![i]!, fellBack: st.prep.fellBack, qparams: qs[e]![i]!.qparams, gIdx: qs[e]![i]!.gIdx })));
  }
}
