/**
 * A float32 Linear reads its `[out, in]` weight as stored, transposed by the
 * product itself (FusedMatMul `transB`), rather than through a Transpose that
 * onnxruntime folds into a transposed copy when the session is made: the
 * same values, bit for bit, for float32 and bf16 weights, with and without
 * a bias, and in a graph emulating bf16 rounding.
 */
import { describe, expect, test } from 'vitest';
import { linear, weightConst } from '../src/execute/forward/ops.js';
import { matmul, matmulBias, setGraphPrecision, type LowPrecision } from '../src/execute/forward/precision.js';
import { bf16Bytes } from '../src/execute/dtypes.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../src/execute/runtime.js';

const OUT = 96;
const IN = 80;
let seed = 5;
const next = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const weight = Float32Array.from({ length: OUT * IN }, next);
const bias = Float32Array.from({ length: OUT }, next);
const x = Float32Array.from({ length: 3 * 7 * IN }, next);

/** The weight as bf16 bits and the float32 values they hold. */
const bits = bf16Bytes(weight);
const bf16Values = (() => {
  const u16 = new Uint16Array(bits.buffer, bits.byteOffset, bits.byteLength / 2);
  return Float32Array.from(u16, (b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!);
})();

/** `x @ W.T (+ b)` as `linear` builds it, or through a transposed copy of the weight (the reference). */
function graph(kind: 'linear' | 'transpose', w: 'float32' | 'bf16', withBias: boolean, low?: LowPrecision): Uint8Array {
  const g = new GraphBuilder();
  setGraphPrecision(g, low);
  const input = g.input('x', OnnxType.float, [3, 7, IN]);
  let y: string;
  if (kind === 'linear') y = linear(g, input, w === 'bf16' ? { bf16: bits, rows: OUT, cols: IN } : { data: weight, rows: OUT, cols: IN }, withBias ? bias : undefined);
  else {
    const values = w === 'bf16' ? bf16Values : weight;
    const product = g.op('MatMul', [input, g.op('Transpose', [weightConst(g, values, [OUT, IN])], { perm: [1, 0] })]);
    y = withBias ? g.op('Add', [product, weightConst(g, bias, [OUT])]) : product;
  }
  g.output(y, 'y', OnnxType.float, [3, 7, OUT]);
  return g.build('product');
}

describe('Linear products read the stored weight transposed', () => {
  test('the same bits as a product with a transposed copy, float32 and bf16 weights, with and without bias', async () => {
    const rt = new GraphRuntime('cpu');
    try {
      const feeds = { x: { type: 'float32' as const, data: x, dims: [3, 7, IN] } };
      for (const w of ['float32', 'bf16'] as const) {
        for (const withBias of [false, true]) {
          const key = `${w}-${withBias}`;
          const built = graph('linear', w, withBias);
          expect(Buffer.from(built).toString('latin1')).toContain('FusedMatMul');
          const got = (await rt.run(`l-${key}`, () => built, feeds)).y!.data as Float32Array;
          const want = (await rt.run(`t-${key}`, () => graph('transpose', w, withBias), feeds)).y!.data as Float32Array;
          expect(got, key).toEqual(want);
        }
      }
    } finally {
      await rt.dispose();
    }
  });

  test('an emulated bf16 graph reads a bf16 weight so too: the same bits as rounding a product with a transposed copy', async () => {
    const rt = new GraphRuntime('cpu');
    try {
      const low: LowPrecision = { dtype: 'bfloat16', native: false };
      const feeds = { x: { type: 'float32' as const, data: x, dims: [3, 7, IN] } };
      for (const withBias of [false, true]) {
        const reference = (): Uint8Array => {
          const g = new GraphBuilder();
          setGraphPrecision(g, low);
          const input = g.input('x', OnnxType.float, [3, 7, IN]);
          const wt = g.op('Transpose', [weightConst(g, bf16Values, [OUT, IN])], { perm: [1, 0] });
          g.output(withBias ? matmulBias(g, input, wt, weightConst(g, bias, [OUT])) : matmul(g, input, wt, true), 'y', OnnxType.float, [3, 7, OUT]);
          return g.build('reference');
        };
        const got = (await rt.run(`e-${withBias}`, () => graph('linear', 'bf16', withBias, low), feeds)).y!.data as Float32Array;
        const want = (await rt.run(`r-${withBias}`, reference, feeds)).y!.data as Float32Array;
        expect(got).toEqual(want);
        // Rounded: every value is a bf16 value.
        expect(new Uint32Array(got.buffer, got.byteOffset, got.length).every((v) => (v & 0xffff) === 0)).toBe(true);
      }
    } finally {
      await rt.dispose();
    }
  });
});
