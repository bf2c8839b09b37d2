/**
 * `QUANTC_HESSIAN_GEMM=low`: where a graph computes natively in bf16/fp16
 * (CUDA), Σ xxᵀ runs as onnxruntime's GemmFloat8 on the low values with a
 * float32 result; elsewhere, and by default, as the float32 MatMul.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { enableObservers, observeInput } from '../src/execute/forward/observe.js';
import { setGraphPrecision, type LowPrecision } from '../src/execute/forward/precision.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';

/** The text of a graph observing the Hessian of one bf16-valued input under `low`. */
function hessianGraph(low: LowPrecision | undefined): string {
  const g = new GraphBuilder();
  setGraphPrecision(g, low);
  enableObservers(g, { experts: 'all', hessians: true, minmax: () => false });
  const x = g.input('x', OnnxType.float, [2, 4, 8]);
  // A value of the low dtype, as the graph's activations are.
  const lowValue = low ? g.op('Cast', [g.op('Cast', [x], { to: OnnxType.bfloat16 })], { to: OnnxType.float }) : x;
  observeInput(g, ['l.q_proj'], lowValue);
  return Buffer.from(g.build('hessian')).toString('latin1');
}

const native: LowPrecision = { dtype: 'bfloat16', native: true, narrow: 'all' };
const emulated: LowPrecision = { dtype: 'bfloat16', native: false };
const count = (text: string, op: string): number => text.split(op).length - 1;

describe('Hessians as one low-precision product', () => {
  const saved = process.env.QUANTC_HESSIAN_GEMM;
  afterEach(() => {
    if (saved === undefined) delete process.env.QUANTC_HESSIAN_GEMM;
    else process.env.QUANTC_HESSIAN_GEMM = saved;
  });

  test('by default the float32 MatMul, in every precision', () => {
    delete process.env.QUANTC_HESSIAN_GEMM;
    for (const low of [native, emulated, undefined]) {
      const text = hessianGraph(low);
      expect(count(text, 'GemmFloat8')).toBe(0);
      expect(count(text, 'MatMul')).toBe(1);
    }
  });

  test('asked for, GemmFloat8 where the graph runs natively in bf16, reading the bf16 tensor itself', () => {
    process.env.QUANTC_HESSIAN_GEMM = 'low';
    const text = hessianGraph(native);
    expect(count(text, 'GemmFloat8')).toBe(1);
    expect(count(text, 'MatMul')).toBe(0);
    expect(text).toContain('com.microsoft');
    // The bf16 value feeds the product as it is: the one Cast is the input's own rounding.
    expect(count(text, 'Cast')).toBe(1);
    // The CPU (emulated rounding, no such kernel) and float32 graphs keep the MatMul.
    for (const low of [emulated, undefined]) expect(count(hessianGraph(low), 'GemmFloat8')).toBe(0);
  });
});
