/**
 * The GPTQ solve on onnxruntime graphs (see solve-graphs.ts): the
 * inverse-Hessian factor and the column loop each run as one graph, and
 * JavaScript only lays out their inputs. Weights that share a prepared
 * Hessian and a quantization kind are solved as one problem with their rows
 * stacked: given the Hessian and the scales fixed up front, GPTQ's rows are
 * independent, so q/k/v (or every expert's gate/up under one shared
 * Hessian) cost one upload of `U` and one graph run.
 */
import type { GraphRuntime } from '../runtime.js';
import { ROW_BLOCK_BYTES } from './row-blocks.js';
import { columnLoopGraph, columnLoopKey, inverseFactorGraph, type LoopKind } from './solve-graphs.js';
import { loopQparams, type FactorEngine, type GptqProblem, type GptqSettings, type GptqSolution, type LoopQparams, type PreparedHessian } from './solve.js';

/** Which solve runs: graphs (the device path) or JavaScript with GEMMs on onnxruntime. */
export type SolveMode = 'graph' | 'js';

/**
 * The solve mode for `device`: `QUANTC_GPTQ_SOLVE=graph|js` forces one;
 * otherwise graphs on CUDA and JavaScript on the CPU, where its tight loops
 * beat a graph's per-operator sweeps.
 */
export function solveModeFor(device: 'cpu' | 'cuda', env: string | undefined = process.env.QUANTC_GPTQ_SOLVE): SolveMode {
  if (env === 'graph' || env === 'js') return env;
  return device === 'cuda' ? 'graph' : 'js';
}

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

/** The GPTQ solve on graphs of one {@link GraphRuntime} (sessions cached per kind; shapes are symbolic). */
export class GraphSolver implements FactorEngine {
  constructor(
    readonly rt: GraphRuntime,
    readonly panel = FACTOR_PANEL,
    /** Bound on one graph run's float32 weight rows (tall weights and large stacks run in row chunks). */
    readonly bytes = ROW_BLOCK_BYTES,
  ) {}

  padded(k: number): number {
    return Math.ceil(k / this.panel) * this.panel;
  }

  async factor(a: Float32Array, n: number, k: number): Promise<Float32Array | null> {
    const out = await this.rt.run(`gptq-factor-${this.panel}`, () => inverseFactorGraph(this.panel), {
      a: { type: 'float32', data: a, dims: [n, n] },
      k: { type: 'int64', data: BigInt64Array.of(BigInt(k)), dims: [1] },
    });
    if ((out.ok!.data as Int32Array)[0] !== 1) return null;
    return out.u!.data as Float32Array;
  }

  /**
   * Solves `problems` (same columns, same {@link stackKey}) under `prep` as
   * one stacked problem; one solution per problem, as {@link solveGptq}
   * gives it.
   */
  async solve(problems: readonly GptqProblem[], settings: GptqSettings, prep: PreparedHessian): Promise<GptqSolution[]> {
    const K = prep.k;
    const qs = problems.map((p) => loopQparams(p, prep));
    const kind = loopKind(qs[0]!, problems[0]!);
    for (const p of problems) if (p.cols !== K || stackKey(p) !== stackKey(problems[0]!)) throw new Error('GPTQ: stacked problems differ in shape or scheme');
    const block = Math.max(1, settings.blockSize);
    const perm = BigInt64Array.from({ length: K }, (_, j) => BigInt(prep.perm ? prep.perm[j]! : j));
    const iperm = new BigInt64Array(K);
    for (let j = 0; j < K; j++) iperm[Number(perm[j]!)] = BigInt(j);
    const keep = new Float32Array(K).fill(1);
    for (const j of prep.dead) keep[j] = 0;
    const gcol = BigInt64Array.from(qs[0]!.groupOf, (g) => BigInt(g));
    const groups = qs[0]!.qparams.layout.groups;
    const fixed = {
      u: { type: 'float32' as const, data: prep.hinv, dims: [K, K] },
      perm: { type: 'int64' as const, data: perm, dims: [K] },
      iperm: { type: 'int64' as const, data: iperm, dims: [K] },
      keep: { type: 'float32' as const, data: keep, dims: [K] },
      gcol: { type: 'int64' as const, data: gcol, dims: [K] },
    };
    const weights = problems.map((p) => new Float32Array(p.rows * K));
    const losses = problems.map(() => 0);
    const limit = Math.max(1, Math.floor(this.bytes / (4 * K)));
    for (const segs of chunks(problems.map((p) => p.rows), limit)) {
      const R = segs.reduce((n, s) => n + s.r1 - s.r0, 0);
      const single = segs.length === 1 && segs[0]!.r0 === 0 && segs[0]!.r1 === problems[segs[0]!.p]!.rows;
      const w = single ? problems[segs[0]!.p]!.weight : new Float32Array(R * K);
      // Scales per group and row: row r of a problem uses scale row ⌊r / height⌋.
      const s = new Float32Array(groups * R);
      const z = kind.asymmetric ? new Float32Array(groups * R) : null;
      let at = 0;
      for (const seg of segs) {
        const p = problems[seg.p]!;
        const q = qs[seg.p]!.qparams;
        if (!single) w.set(p.weight.subarray(seg.r0 * K, seg.r1 * K), at * K);
        const gs = q.globalScale;
        for (let r = seg.r0; r < seg.r1; r++) {
          const base = Math.floor(r / q.layout.height) * groups;
          for (let g = 0; g < groups; g++) {
            const v = q.scale[base + g]!;
            s[g * R + at + r - seg.r0] = gs === null ? v : Math.fround(v / gs);
            if (z) z[g * R + at + r - seg.r0] = q.zeroPoint![base + g]!;
          }
        }
        at += seg.r1 - seg.r0;
      }
      const out = await this.rt.run(columnLoopKey(kind, block), () => columnLoopGraph(kind, block), {
        ...fixed,
        w: { type: 'float32', data: w, dims: [R, K] },
        s: { type: 'float32', data: s, dims: [groups, R] },
        ...(z ? { z: { type: 'float32' as const, data: z, dims: [groups, R] } } : {}),
      });
      const q = out.q!.data as Float32Array;
      const loss = out.loss!.data as Float32Array;
      at = 0;
      for (const seg of segs) {
        weights[seg.p]!.set(q.subarray(at * K, (at + seg.r1 - seg.r0) * K), seg.r0 * K);
        for (let r = 0; r < seg.r1 - seg.r0; r++) losses[seg.p]! += loss[at + r]! / 2;
        at += seg.r1 - seg.r0;
      }
    }
    return problems.map((p, i) => ({ weight: weights[i]!, loss: losses[i]!, fellBack: prep.fellBack, qparams: qs[i]!.qparams, gIdx: qs[i]!.gIdx }));
  }
}
