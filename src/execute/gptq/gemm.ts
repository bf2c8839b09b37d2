/**
 * The one dense kernel the blocked GPTQ solve needs: `C − op(A)·op(B)` in
 * float32. Blocked Cholesky, triangular inverse and GPTQ's lazy updates
 * spend almost all their FLOPs here, so it runs in onnxruntime (MLAS on the
 * CPU, cuBLAS on CUDA) while JavaScript does the thin panel work; a plain
 * JavaScript version serves small matrices and tests.
 */
import { GraphBuilder, OnnxType } from '../onnx/graph-builder.js';
import type { GraphRuntime } from '../runtime.js';

/** A matrix operand: row-major `rows × cols` values, used transposed when `t`. */
export interface Operand {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
  readonly t?: boolean;
}

/** Computes `C − op(A)·op(B)` (a new array; C is `m × n`). */
export interface GemmEngine {
  subtractProduct(c: Float32Array, m: number, n: number, a: Operand, b: Operand): Promise<Float32Array>;
}

function at(o: Operand, i: number, j: number): number {
  return o.t ? o.data[j * o.cols + i]! : o.data[i * o.cols + j]!;
}

/** The JavaScript engine (float64 accumulation). */
export const jsGemm: GemmEngine = {
  async subtractProduct(c, m, n, a, b) {
    const k = a.t ? a.rows : a.cols;
    const out = Float32Array.from(c);
    const row = new Float64Array(n);
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const x = at(a, i, p);
        if (x === 0) continue;
        for (let j = 0; j < n; j++) row[j]! += x * at(b, p, j);
      }
      for (let j = 0; j < n; j++) out[i * n + j] = out[i * n + j]! - row[j]!;
    }
    return out;
  },
};

function gemmGraph(transA: boolean, transB: boolean): Uint8Array {
  const g = new GraphBuilder();
  const a = g.input('a', OnnxType.float, transA ? ['k', 'm'] : ['m', 'k']);
  const b = g.input('b', OnnxType.float, transB ? ['n', 'k'] : ['k', 'n']);
  const c = g.input('c', OnnxType.float, ['m', 'n']);
  g.output(g.op('Gemm', [a, b, c], { alpha: { float: -1 }, beta: { float: 1 }, transA: transA ? 1 : 0, transB: transB ? 1 : 0 }), 'y', OnnxType.float, ['m', 'n']);
  return g.build('gemm_update');
}

/** The onnxruntime engine on `rt`'s device; products smaller than `minFlops` run in JavaScript (a graph run has a fixed cost). */
export function runtimeGemm(rt: GraphRuntime, minFlops = 1 << 22): GemmEngine {
  return {
    async subtractProduct(c, m, n, a, b) {
      const k = a.t ? a.rows : a.cols;
      if (2 * m * n * k < minFlops) return jsGemm.subtractProduct(c, m, n, a, b);
      const key = `gemm-${a.t ? 't' : 'n'}${b.t ? 't' : 'n'}`;
      const out = await rt.run(key, () => gemmGraph(a.t === true, b.t === true), {
        a: { type: 'float32', data: a.data, dims: [a.rows, a.cols] },
        b: { type: 'float32', data: b.data, dims: [b.rows, b.cols] },
        c: { type: 'float32', data: c, dims: [m, n] },
      });
      return out.y!.data as Float32Array;
    },
  };
}
