/**
 * bfloat16 values that enter or leave a graph as their raw bit patterns
 * (uint16): onnxruntime-node can neither feed nor return a bfloat16 tensor,
 * and ONNX has no bit cast, so the patterns are made and read with
 * arithmetic, exactly.
 */
import { OnnxType, type GraphBuilder } from './graph-builder.js';

/**
 * The float32 values of uint16 bf16 patterns `bits`: value = ±(lead[e] + m)
 * · pow[e], where e is the exponent field, m the 7 mantissa bits, lead 128
 * for normal numbers (0 for subnormals) and pow 2^(e−134) (2^−133 for
 * subnormals); the exponent field 255 gives ±infinity (m = 0) or NaN.
 */
export function decodeBf16Bits(g: GraphBuilder, bits: string): string {
  const v = g.op('Cast', [bits], { to: OnnxType.float });
  const negative = g.op('Cast', [g.op('GreaterOrEqual', [v, g.f32(32768)])], { to: OnnxType.float });
  const magnitude = g.op('Sub', [v, g.op('Mul', [negative, g.f32(32768)])]);
  const exponent = g.op('Floor', [g.op('Div', [magnitude, g.f32(128)])]);
  const mantissa = g.op('Sub', [magnitude, g.op('Mul', [exponent, g.f32(128)])]);
  const index = g.op('Cast', [exponent], { to: OnnxType.int64 });
  // Field 255 reads +inf from the table, times (lead + m): inf for m = 0; m > 0 marks NaN.
  const lead = g.f32(Array.from({ length: 256 }, (_, e) => (e === 0 ? 0 : 128)));
  const pow = g.f32(Array.from({ length: 256 }, (_, e) => (e === 0 ? 2 ** -133 : e === 255 ? Infinity : 2 ** (e - 134))));
  let value = g.op('Mul', [g.op('Add', [g.op('Gather', [lead, index]), mantissa]), g.op('Gather', [pow, index])]);
  const nan = g.op('And', [g.op('Equal', [exponent, g.f32(255)]), g.op('Greater', [mantissa, g.f32(0)])]);
  value = g.op('Where', [nan, g.f32(NaN), value]);
  return g.op('Mul', [value, g.op('Sub', [g.f32(1), g.op('Mul', [negative, g.f32(2)])])]);
}

/**
 * The uint16 bf16 patterns of float32 `x` rounded to bfloat16 (to nearest
 * even, as a Cast does; what a bf16 model holds): sign, exponent field
 * e + 127 of 2^e ≤ |x| < 2^(e+1) (found with a logarithm, then corrected
 * by comparison, so rounding in the logarithm cannot shift it) and the 7
 * mantissa bits; subnormals as |x| / 2^−133; ±infinity and NaN as their
 * patterns (0x7f80, 0x7fc0). Zero's sign is dropped.
 */
export function encodeBf16Bits(g: GraphBuilder, x: string): string {
  const v = g.op('Cast', [g.op('Cast', [x], { to: OnnxType.bfloat16 })], { to: OnnxType.float });
  const negative = g.op('Cast', [g.op('Less', [v, g.f32(0)])], { to: OnnxType.float });
  const inf = g.op('IsInf', [v]);
  const nan = g.op('IsNaN', [v]);
  // Non-finite values take 1 in the arithmetic below, then their own patterns.
  const a = g.op('Where', [g.op('Or', [inf, nan]), g.f32(1), g.op('Abs', [v])]);
  // 2^e for e in [-126, 127] from a table: exact, where a power function need not be.
  const pow2 = g.f32(Array.from({ length: 254 }, (_, i) => 2 ** (i - 126)));
  const p2 = (e: string): string => g.op('Gather', [pow2, g.op('Cast', [g.op('Add', [e, g.f32(126)])], { to: OnnxType.int64 })]);
  const guess = g.op('Clip', [g.op('Floor', [g.op('Mul', [g.op('Log', [g.op('Max', [a, g.f32(2 ** -126)])]), g.f32(1 / Math.LN2)])]), g.f32(-125), g.f32(126)]);
  const low = g.op('Cast', [g.op('Greater', [p2(guess), a])], { to: OnnxType.float });
  let e = g.op('Sub', [guess, low]);
  const high = g.op('Cast', [g.op('LessOrEqual', [p2(g.op('Add', [e, g.f32(1)])), a])], { to: OnnxType.float });
  e = g.op('Add', [e, high]);
  const normal = g.op('GreaterOrEqual', [a, g.f32(2 ** -126)]);
  const mantissa = g.op('Round', [g.op('Mul', [g.op('Sub', [g.op('Div', [a, p2(e)]), g.f32(1)]), g.f32(128)])]);
  const normalBits = g.op('Add', [g.op('Mul', [g.op('Add', [e, g.f32(127)]), g.f32(128)]), mantissa]);
  // m · 2^−133, scaled back in two steps (2^133 is no float32).
  const subnormalBits = g.op('Round', [g.op('Mul', [g.op('Mul', [a, g.f32(2 ** 126)]), g.f32(128)])]);
  let bits = g.op('Add', [g.op('Where', [normal, normalBits, subnormalBits]), g.op('Mul', [negative, g.f32(32768)])]);
  bits = g.op('Where', [inf, g.op('Add', [g.f32(0x7f80), g.op('Mul', [negative, g.f32(32768)])]), bits]);
  bits = g.op('Where', [nan, g.f32(0x7fc0), bits]);
  return g.op('Cast', [bits], { to: OnnxType.uint16 });
}
