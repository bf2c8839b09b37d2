/**
 * The exponential torch's CPU flash attention (sdpa on a bf16/fp16 model)
 * takes for `exp(score − max)`: along each row of scores, the keys that
 * fill whole vectors (16 floats with AVX-512) go through ATen's `fexp_u20`,
 * 2^(x·log₂e) with the fraction corrected by a cubic and the result's
 * float32 bits assembled from the integer part (up to 1.1e-4 off `exp`;
 * exp(0) is 0.99995), the remaining keys through `std::exp`. The exps are
 * rounded to bf16 for the product with the values, so with `exp` alone one
 * attention output element in a hundred rounds the other way, which models
 * routed by thresholds on their router logits (PhiMoE's sparsemixer) carry
 * on into other experts. Measured identical to torch's kernel but for a few
 * elements in 10^4 up to 520 keys (at 1030 keys 3.5 % differ).
 */
import { OnnxType, type GraphBuilder } from '../onnx/graph-builder.js';

/** A float32 value from its IEEE bits. */
function fromBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits]).buffer)[0]!;
}

/** ATen's constants (`_mm512_set1_ps`: float32). */
const LOG2E = fromBits(0x3fb8aa3b);
const LN_FLT_MIN = fromBits(0xc2aeac50);
const C0 = Math.fround(0.00010703434948458272);
const C1 = Math.fround(0.30354260500649682);
const C2 = Math.fround(-0.22433836478672356);
const C3 = Math.fround(-0.079204240219773236);

/** torch's AVX-512 vectors of float32. */
const LANES = 16;

/**
 * `exp(x)` of `[…, keys]` scores less their row's max, as torch's CPU flash
 * attention computes it: {@link fexpU20} on the first `keys − keys % 16`
 * columns, `Exp` on the rest.
 */
export function flashExp(g: GraphBuilder, x: string): string {
  const keys = g.op('Gather', [g.op('Shape', [x]), g.i64([-1])], { axis: 0 });
  const vectorized = g.op('Sub', [keys, g.op('Mod', [keys, g.i64([LANES])])]);
  const columns = g.op('Range', [g.i64(0), g.op('Squeeze', [keys]), g.i64(1)]);
  return g.op('Where', [g.op('Less', [columns, vectorized]), fexpU20(g, x), g.op('Exp', [x])]);
}

/**
 * `fexp_u20(x)` of float32 `x ≤ 0` (scores less their row's max; −∞ where
 * masked), as float32. The fused multiply-adds run in float64, where the
 * product of two float32 values is exact: the sum rounded to float64, then
 * to float32, is the fused result but where the float64 sum lands exactly
 * halfway between two float32 values. The integer `2^23·(s + 127)`
 * read as float32 bits is `2^e · (1 + m)`, with `e` and `m` the integer and
 * fractional parts of `s`, computed exactly in float64.
 */
export function fexpU20(g: GraphBuilder, x: string): string {
  const f64 = (v: string): string => g.op('Cast', [v], { to: OnnxType.double });
  const f32 = (v: string): string => g.op('Cast', [v], { to: OnnxType.float });
  const fma = (a: string, b: string, c: number): string => f32(g.op('Add', [g.op('Mul', [f64(a), f64(b)]), f64(g.f32(c))]));
  const src = g.op('Mul', [x, g.f32(LOG2E)]);
  const fraction = g.op('Sub', [src, g.op('Floor', [src])]);
  let poly = fma(fraction, g.f32(C3), C2);
  poly = fma(fraction, poly, C1);
  poly = fma(fraction, poly, C0);
  // `2^23 · (src − poly) + 2^23 · 127` in float32 (the scaling by 2^23 is exact): the bits as an integer.
  const bits = g.op('Add', [g.op('Mul', [g.op('Sub', [src, poly]), g.f32(2 ** 23)]), g.f32(2 ** 23 * 127)]);
  const s = g.op('Sub', [g.op('Div', [f64(bits), f64(g.f32(2 ** 23))]), f64(g.f32(127))]);
  const e = g.op('Floor', [s]);
  const value = f32(g.op('Mul', [g.op('Pow', [f64(g.f32(2)), e]), g.op('Add', [f64(g.f32(1)), g.op('Sub', [s, e])])]));
  // Below ln(FLT_MIN) (masked keys too) the result is 0.
  return g.op('Where', [g.op('Less', [x, g.f32(LN_FLT_MIN)]), g.f32(0), value]);
}
