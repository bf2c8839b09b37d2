/**
 * The ONNX graphs of round-to-nearest quantization. Weights enter as
 * float32 viewed as groups ({@link GroupView}); each graph keeps PyTorch's
 * rounding points (a Cast to bfloat16 and back wherever compressed-tensors
 * computes in bf16) so results match compressed-tensors exactly, on the CPU
 * and the CUDA provider alike. Shapes are symbolic: one graph serves every
 * module of a kind.
 */
import { decodeBf16Bits } from '../onnx/bf16-bits.js';
import { GraphBuilder, OnnxType } from '../onnx/graph-builder.js';
import type { KernelKind, WeightDtype } from './weight-kernel.js';

/** How the weight enters a graph: float32 values, or raw bf16 bit patterns decoded in the graph. */
export type WeightInput = 'f32' | 'bf16-bits';

/** Declares input `w` and returns its float32 values (`bf16-bits`: uint16 patterns decoded in the graph). */
function weightInput(g: GraphBuilder, input: WeightInput, dims: readonly string[]): string {
  if (input === 'f32') return g.input('w', OnnxType.float, dims);
  return decodeBf16Bits(g, g.input('w', OnnxType.uint16, dims));
}

/** Per-group minimum and maximum over `axes` of a 3-D or 4-D input `w`. */
export function observeGraph(rank: 3 | 4, axes: readonly number[], input: WeightInput = 'f32'): Uint8Array {
  const g = new GraphBuilder();
  const dims = rank === 3 ? ['a', 'b', 'c'] : ['a', 'b', 'c', 'd'];
  const w = weightInput(g, input, dims);
  const ax = g.i64(axes);
  g.output(g.op('ReduceMin', [w, ax], { keepdims: 0 }), 'min', OnnxType.float, ['p', 'q']);
  g.output(g.op('ReduceMax', [w, ax], { keepdims: 0 }), 'max', OnnxType.float, ['p', 'q']);
  return g.build('observe');
}

/** Options of the quantize graph. */
export interface QuantizeGraphOptions {
  readonly kind: KernelKind;
  readonly dtype: WeightDtype;
  readonly rank: 3 | 4;
  /** Integer kernels: bit width; values are packed into int32 words when `pack`. */
  readonly bits: number;
  readonly pack: boolean;
  readonly asymmetric: boolean;
  readonly input: WeightInput;
  /** FP8 kernels: output E4M3 byte codes (uint8) instead of float32 values. */
  readonly fp8Codes?: boolean;
  /**
   * Observe in the same graph (rank 3, symmetric FP8 and integers): the
   * scale is `dtype(amax / divisor)` over each group, `eps` where that is 0
   * (compressed-tensors' `calculate_qparams`), output as `s` next to `q`;
   * the weight is uploaded once.
   */
  readonly inGraphScale?: { readonly divisor: number; readonly eps: number };
}

/**
 * The E4M3FN byte of an exact FP8 value v: with a = |v| and E = ⌊log2 a⌋
 * clamped below at −6 (counted as thresholds passed), the code is
 * 128·[v<0 or v=−0] + 8·(E+7) + (a·2^−E·8 − 8); for subnormals (E = −6) this is a·512.
 */
function fp8Code(g: GraphBuilder, v: string): string {
  const a = g.op('Abs', [v]);
  const passed = Array.from({ length: 14 }, (_, i) => g.op('Cast', [g.op('GreaterOrEqual', [a, g.f32(2 ** (i - 5))])], { to: OnnxType.float }));
  const e = g.op('Sum', passed);
  const inv = g.op('Gather', [g.f32(Array.from({ length: 15 }, (_, i) => 2 ** (6 - i))), g.op('Cast', [e], { to: OnnxType.int64 })]);
  const mantissa = g.op('Sub', [g.op('Mul', [g.op('Mul', [a, inv]), g.f32(8)]), g.f32(8)]);
  // 1/v keeps the sign of −0 (which PyTorch writes as 0x80).
  const sign = g.op('Mul', [g.op('Cast', [g.op('Less', [g.op('Div', [g.f32(1), v]), g.f32(0)])], { to: OnnxType.float }), g.f32(128)]);
  const code = g.op('Add', [g.op('Add', [sign, g.op('Mul', [g.op('Add', [e, g.f32(1)]), g.f32(8)])]), mantissa]);
  return g.op('Cast', [code], { to: OnnxType.uint8 });
}

/**
 * Quantizes `w` with scales `s` (shaped to broadcast over groups) and
 * optionally zero points `zp` / global scale `gs`. Outputs `q`:
 * - int, packed: int32 words `[rows, words]` (needs `pshape` = [rows, words, per-word]);
 * - int, unpacked: int8 values in the input's shape;
 * - fp8 / mxfp8: float32 values that are exact FP8 E4M3 numbers;
 * - mxfp4 / nvfp4: uint8 bytes holding two FP4 E2M1 codes (needs `pshape` = [rows, K/2, 2]).
 */
export function quantizeGraph(o: QuantizeGraphOptions): Uint8Array {
  const g = new GraphBuilder();
  const dims = o.rank === 3 ? ['a', 'b', 'c'] : ['a', 'b', 'c', 'd'];
  const sdims = o.rank === 3 ? ['a', 'b', 1] : ['a', 1, 'c', 1];
  const w = weightInput(g, o.input, dims);
  // Round to the weight dtype where PyTorch's result dtype is the weight dtype.
  const narrow = o.dtype === 'BF16' ? OnnxType.bfloat16 : o.dtype === 'F16' ? OnnxType.float16 : null;
  const toDtype = (v: string): string => (narrow === null ? v : g.op('Cast', [g.op('Cast', [v], { to: narrow })], { to: OnnxType.float }));
  let s: string;
  if (o.inGraphScale) {
    // max(|min(w, 0)|, max(w, 0)) is max |w|; a zero scale becomes eps.
    const amax = g.op('ReduceMax', [g.op('Abs', [w]), g.i64([2])], { keepdims: 1 });
    const raw = toDtype(g.op('Div', [amax, g.f32(o.inGraphScale.divisor)]));
    s = g.op('Where', [g.op('Equal', [raw, g.f32(0)]), g.f32(o.inGraphScale.eps), raw]);
    g.output(s, 's', OnnxType.float, sdims);
  } else s = g.input('s', OnnxType.float, sdims);
  let scaled: string;
  if (o.kind === 'nvfp4') {
    const gs = g.input('gs', OnnxType.float, [1]);
    scaled = g.op('Div', [w, g.op('Div', [s, gs])]);
  } else {
    scaled = toDtype(g.op('Div', [w, s]));
  }
  if (o.kind === 'int') {
    if (o.asymmetric) scaled = toDtype(g.op('Add', [scaled, g.input('zp', OnnxType.float, sdims)]));
    const qmin = -(2 ** (o.bits - 1));
    const qmax = 2 ** (o.bits - 1) - 1;
    const q = g.op('Round', [g.op('Clip', [scaled, g.f32(qmin), g.f32(qmax)])]);
    if (!o.pack) {
      g.output(g.op('Cast', [q], { to: OnnxType.int8 }), 'q', OnnxType.int8, dims);
      return g.build('quantize_int');
    }
    const pshape = g.input('pshape', OnnxType.int64, [3]);
    const unsigned = g.op('Cast', [g.op('Add', [q, g.f32(-qmin)])], { to: OnnxType.int64 });
    const per = 32 / o.bits;
    const mult = g.i64(Array.from({ length: per }, (_, i) => 2 ** (i * o.bits)));
    const words = g.op('ReduceSum', [g.op('Mul', [g.op('Reshape', [unsigned, pshape]), mult]), g.i64([2])], { keepdims: 0 });
    g.output(g.op('Cast', [words], { to: OnnxType.int32 }), 'q', OnnxType.int32, ['r', 'n']);
    return g.build('quantize_int_packed');
  }
  if (o.kind === 'fp8' || o.kind === 'mxfp8') {
    const clipped = g.op('Clip', [scaled, g.f32(-448), g.f32(448)]);
    const fp8 = g.op('Cast', [g.op('Cast', [clipped], { to: OnnxType.float8e4m3fn, saturate: 1 })], { to: OnnxType.float });
    if (!o.fp8Codes) {
      g.output(fp8, 'q', OnnxType.float, dims);
      return g.build('quantize_fp8');
    }
    g.output(fp8Code(g, fp8), 'q', OnnxType.uint8, dims);
    return g.build('quantize_fp8_codes');
  }
  // FP4 E2M1: the magnitude code is the number of rounding thresholds passed
  // (compressed-tensors' cast_to_fp4 ties), plus 8 for negative values.
  const x = g.op('Clip', [scaled, g.f32(-6), g.f32(6)]);
  const a = g.op('Abs', [x]);
  const gt = (t: number): string => g.op('Cast', [g.op('Greater', [a, g.f32(t)])], { to: OnnxType.float });
  const ge = (t: number): string => g.op('Cast', [g.op('GreaterOrEqual', [a, g.f32(t)])], { to: OnnxType.float });
  const mag = g.op('Sum', [gt(0.25), ge(0.75), gt(1.25), ge(1.75), gt(2.5), ge(3.5), gt(5)]);
  const sign = g.op('Mul', [g.op('Cast', [g.op('Less', [x, g.f32(0)])], { to: OnnxType.float }), g.f32(8)]);
  const code = g.op('Add', [mag, sign]);
  const pshape = g.input('pshape', OnnxType.int64, [3]);
  const pairs = g.op('ReduceSum', [g.op('Mul', [g.op('Reshape', [code, pshape]), g.f32([1, 16])]), g.i64([2])], { keepdims: 0 });
  g.output(g.op('Cast', [pairs], { to: OnnxType.uint8 }), 'q', OnnxType.uint8, ['r', 'n']);
  return g.build('quantize_fp4');
}
