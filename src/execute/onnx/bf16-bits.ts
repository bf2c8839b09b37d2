/**
 * bfloat16 values that enter a graph as their raw bit patterns (uint16):
 * onnxruntime-node cannot feed a bfloat16 tensor, and ONNX has no bit cast.
 */
import { OnnxType, type GraphBuilder } from './graph-builder.js';

/**
 * The float32 values of uint16 bf16 patterns `bits`, decoded exactly with
 * arithmetic and two table lookups: value = ±(lead[e] + m) · pow[e], where e
 * is the exponent field, m the 7 mantissa bits, lead 128 for normal numbers
 * (0 for subnormals) and pow 2^(e−134) (2^−133 for subnormals).
 */
export function decodeBf16Bits(g: GraphBuilder, bits: string): string {
  const v = g.op('Cast', [bits], { to: OnnxType.float });
  const negative = g.op('Cast', [g.op('GreaterOrEqual', [v, g.f32(32768)])], { to: OnnxType.float });
  const magnitude = g.op('Sub', [v, g.op('Mul', [negative, g.f32(32768)])]);
  const exponent = g.op('Floor', [g.op('Div', [magnitude, g.f32(128)])]);
  const mantissa = g.op('Sub', [magnitude, g.op('Mul', [exponent, g.f32(128)])]);
  const index = g.op('Cast', [exponent], { to: OnnxType.int64 });
  const lead = g.f32(Array.from({ length: 256 }, (_, e) => (e === 0 ? 0 : 128)));
  const pow = g.f32(Array.from({ length: 256 }, (_, e) => (e === 0 ? 2 ** -133 : 2 ** (e - 134))));
  const value = g.op('Mul', [g.op('Add', [g.op('Gather', [lead, index]), mantissa]), g.op('Gather', [pow, index])]);
  return g.op('Mul', [value, g.op('Sub', [g.f32(1), g.op('Mul', [negative, g.f32(2)])])]);
}
