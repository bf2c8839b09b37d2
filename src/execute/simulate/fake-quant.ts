/**
 * compressed-tensors 0.18's fake quantization (`forward_quantize` →
 * `fake_quantize` → `_quantize_dequantize`, CPU path) as ONNX ops, in the
 * activation dtype (float32 here, as the executor runs):
 *
 * - dynamic scales (`compute_dynamic_scales_and_zp` + `calculate_qparams`):
 *   min/max over the token (all axes after the first two), the tensor, or
 *   groups of the last axis; min clamped to ≤ 0 and max to ≥ 0; symmetric
 *   scale `max(|min|, |max|) / (range / 2)` (so int8 divides by 127.5),
 *   asymmetric `(max - min) / range` with zero point
 *   `round(clamp(qmin - min / scale))`; times the global scale when there is
 *   one (NVFP4), rounded to FP8 E4M3 when `scale_dtype` says so, zeros
 *   replaced by the scale dtype's eps;
 * - quantize-dequantize: `scale / global_scale`, `x / scale (+ zp)`,
 *   clamped to the type's range, rounded (int: half to even; FP8: cast to
 *   E4M3, nearest even; FP4: E2M1 by compressed-tensors' thresholds), then
 *   `(q - zp) * scale`.
 */
import { OnnxType, type GraphBuilder } from '../onnx/graph-builder.js';
import type { ActivationArgs } from './activation-args.js';

/** Scales read from the checkpoint: static `scale`/`zeroPoint` (per tensor), and the global scale of NVFP4. */
export interface StoredScales {
  readonly scale?: Float32Array;
  readonly zeroPoint?: Float32Array;
  readonly globalScale?: number;
}

/** Arguments fake quantization cannot follow; the message is user-facing. */
export class FakeQuantError extends Error {}

const FP8_MAX = 448;
const FLOAT32_EPS = 2 ** -23;

/** `[qmin, qmax]` of compressed-tensors' `calculate_range`. */
export function quantRange(a: ActivationArgs): [number, number] {
  if (a.type === 'int') return [-(2 ** (a.numBits - 1)), 2 ** (a.numBits - 1) - 1];
  if (a.numBits === 8) return [-FP8_MAX, FP8_MAX];
  if (a.numBits === 4) return [-6, 6];
  throw new FakeQuantError(`float activations of ${a.numBits} bits are not supported (4 or 8)`);
}

/** Whether fake quantization can follow `a` (null when it can, else why not). */
export function unsupportedReason(a: ActivationArgs, hasStaticScale: boolean): string | null {
  if (a.type === 'float' && a.numBits !== 4 && a.numBits !== 8) return `float activations of ${a.numBits} bits`;
  if (a.type === 'int' && (a.numBits < 2 || a.numBits > 8)) return `int activations of ${a.numBits} bits`;
  if (a.scaleDtype === 'uint8' && !isMx(a)) return `scale_dtype uint8 without MX arguments (float, 4 or 8 bits, group_size 32)`;
  if (a.scaleDtype !== null && a.scaleDtype !== 'uint8' && !a.scaleDtype.startsWith('float') && !a.scaleDtype.startsWith('bfloat')) return `scale_dtype ${a.scaleDtype}`;
  if (a.type === 'float' && a.numBits === 4 && !a.symmetric) return 'asymmetric FP4';
  if (a.scaleDtype === 'uint8' && !a.symmetric) return 'asymmetric MX scales';
  if (a.dynamic === false) {
    if (a.strategy !== 'tensor') return `static ${a.strategy} activation scales`;
    if (!hasStaticScale) return 'static scales missing from the checkpoint';
    return null;
  }
  if (!['token', 'tensor', 'group', 'tensor_group'].includes(a.strategy)) return `dynamic ${a.strategy} strategy`;
  if ((a.strategy === 'group' || a.strategy === 'tensor_group') && !a.groupSize) return `${a.strategy} without group_size`;
  return null;
}

/** compressed-tensors' `should_generate_mx_scales`: MXFP4/MXFP8 activations get E8M0 power-of-two scales. */
export function isMx(a: ActivationArgs): boolean {
  return a.type === 'float' && (a.numBits === 4 || a.numBits === 8) && a.groupSize === 32 && a.scaleDtype === 'uint8';
}

/**
 * MX scales from the groups' max magnitudes (`generate_mx_scales`, then the
 * uint8 rounding and `maybe_convert_from_mx_exp`): `amax` rounded to a power
 * of two `2^E` (up when its mantissa is at least 1.75, the carry of
 * `round_to_power_2`), exponent `127 + E - offset` (offset 2 for FP4, 8 for
 * FP8) clamped to [0, 255] (a zero group gives 0), scale `2^(exponent - 127)`.
 */
function mxScale(g: GraphBuilder, amax: string, numBits: number): string {
  const pow2 = (e: string): string => g.op('Pow', [g.f32(2), e]);
  const asFloat = (b: string): string => g.op('Cast', [b], { to: OnnxType.float });
  // floor(log2 amax), corrected by one either way where the logarithm rounds across a power of two.
  let e = g.op('Floor', [g.op('Div', [g.op('Log', [amax]), g.f32(Math.LN2)])]);
  e = g.op('Sub', [e, asFloat(g.op('Greater', [pow2(e), amax]))]);
  e = g.op('Add', [e, asFloat(g.op('LessOrEqual', [g.op('Mul', [pow2(e), g.f32(2)]), amax]))]);
  const mantissa = g.op('Div', [amax, pow2(e)]);
  e = g.op('Add', [e, asFloat(g.op('GreaterOrEqual', [mantissa, g.f32(1.75)]))]);
  const offset = numBits === 4 ? 2 : 8;
  let exponent = clamp(g, g.op('Add', [e, g.f32(127 - offset)]), 0, 255);
  exponent = g.op('Where', [g.op('Equal', [amax, g.f32(0)]), g.f32(0), exponent]);
  return pow2(g.op('Sub', [exponent, g.f32(127)]));
}

/** Rounds to the nearest FP8 E4M3 value (the cast torch's `.to(float8_e4m3fn)` does, after clamping) and back to float32. */
function castFp8(g: GraphBuilder, x: string): string {
  return g.op('Cast', [g.op('Cast', [x], { to: OnnxType.float8e4m3fn, saturate: 1 })], { to: OnnxType.float });
}

/** compressed-tensors' `cast_to_fp4` (CPU): E2M1 by its thresholds (ties at 0.25, 1.25, 2.5 and 5 go down, at 0.75, 1.75 and 3.5 up), sign kept. */
function castFp4(g: GraphBuilder, x: string): string {
  const a = g.op('Abs', [x]);
  const steps: [string, number, number][] = [
    ['Greater', 0.25, 0.5],
    ['GreaterOrEqual', 0.75, 1],
    ['Greater', 1.25, 1.5],
    ['GreaterOrEqual', 1.75, 2],
    ['Greater', 2.5, 3],
    ['GreaterOrEqual', 3.5, 4],
    ['Greater', 5, 6],
  ];
  let r = g.f32(0);
  for (const [cmp, edge, value] of steps) r = g.op('Where', [g.op(cmp, [a, g.f32(edge)]), g.f32(value), r]);
  return g.op('Mul', [r, g.op('Sign', [x])]);
}

function clamp(g: GraphBuilder, x: string, lo: number, hi: number): string {
  return g.op('Min', [g.op('Max', [x, g.f32(lo)]), g.f32(hi)]);
}

/** Clamp and round to the quantized type (`round_to_quantized_type_args`). */
function roundToType(g: GraphBuilder, x: string, a: ActivationArgs): string {
  const [lo, hi] = quantRange(a);
  const c = clamp(g, x, lo, hi);
  if (a.type === 'int') return g.op('Round', [c]);
  return a.numBits === 8 ? castFp8(g, c) : castFp4(g, c);
}

/** Dynamic scale (and zero point) of `x`, shaped to broadcast against it (grouped `x` for group strategies). */
function dynamicScale(g: GraphBuilder, x: string, a: ActivationArgs, globalScale: string | null): { scale: string; zp: string | null } {
  const [qmin, qmax] = quantRange(a);
  const range = qmax - qmin;
  const reduce = (op: string): string => {
    if (a.strategy === 'tensor') return g.op(op, [x], { keepdims: 0 });
    // Every axis after the first two; none for a 2-D input, which then reduces over the whole tensor (as compressed-tensors does).
    if (a.strategy === 'token') return g.op(op, [x, g.op('Range', [g.i64(2), g.op('Size', [g.op('Shape', [x])]), g.i64(1)])], { keepdims: 1 });
    return g.op(op, [x, g.i64([-1])], { keepdims: 1 });
  };
  const min = g.op('Min', [reduce('ReduceMin'), g.f32(0)]);
  const max = g.op('Max', [reduce('ReduceMax'), g.f32(0)]);
  let scale: string;
  let zp: string | null = null;
  if (a.symmetric && isMx(a)) {
    // A power of two, never zero (eps for uint8 scales is 1 and cannot apply).
    return { scale: mxScale(g, g.op('Max', [g.op('Abs', [min]), g.op('Abs', [max])]), a.numBits), zp: null };
  }
  if (a.symmetric) {
    scale = g.op('Div', [g.op('Max', [g.op('Abs', [min]), g.op('Abs', [max])]), g.f32(range / 2)]);
  } else {
    scale = g.op('Div', [g.op('Sub', [max, min]), g.f32(range)]);
    const z = clamp(g, g.op('Sub', [g.f32(qmin), g.op('Div', [min, scale])]), qmin, qmax);
    // zp_dtype defaults to the quantized type: int8 rounds half to even, FP8 casts. An all-zero
    // input gives 0 / 0 = NaN, which torch's cast to int8 turns into 0.
    zp = a.type === 'int' ? g.op('Round', [z]) : castFp8(g, z);
    zp = g.op('Where', [g.op('IsNaN', [zp]), g.f32(0), zp]);
  }
  if (globalScale) scale = g.op('Mul', [globalScale, scale]);
  if (a.scaleDtype === 'float8_e4m3fn') scale = castFp8(g, clamp(g, scale, -FP8_MAX, FP8_MAX));
  const eps = a.scaleDtype === 'float8_e4m3fn' ? 0.125 : FLOAT32_EPS;
  scale = g.op('Where', [g.op('Equal', [scale, g.f32(0)]), g.f32(eps), scale]);
  return { scale, zp };
}

/**
 * `x` (any rank, channels on the last axis) fake-quantized as
 * compressed-tensors' forward does with arguments `a` and the checkpoint's
 * `stored` scales.
 */
export function fakeQuantize(g: GraphBuilder, x: string, a: ActivationArgs, stored: StoredScales): string {
  const why = unsupportedReason(a, stored.scale !== undefined);
  if (why) throw new FakeQuantError(`cannot simulate ${why}`);
  const grouped = a.dynamic !== false && (a.strategy === 'group' || a.strategy === 'tensor_group');
  // [..., K] → [..., K / group, group]
  const shape = grouped ? g.op('Shape', [x]) : '';
  const input = grouped ? g.op('Reshape', [x, g.op('Concat', [g.op('Slice', [shape, g.i64([0]), g.i64([-1])]), g.i64([-1, a.groupSize!])], { axis: 0 })]) : x;
  const globalScale = stored.globalScale !== undefined ? g.f32(stored.globalScale) : null;
  let scale: string;
  let zp: string | null;
  if (a.dynamic === false) {
    scale = g.f32([...stored.scale!], [stored.scale!.length]);
    zp = stored.zeroPoint ? g.f32([...stored.zeroPoint], [stored.zeroPoint.length]) : null;
  } else {
    ({ scale, zp } = dynamicScale(g, input, a, globalScale));
  }
  if (globalScale) scale = g.op('Div', [scale, globalScale]);
  let scaled = g.op('Div', [input, scale]);
  if (zp) scaled = g.op('Add', [scaled, zp]);
  let q = roundToType(g, scaled, a);
  if (zp) q = g.op('Sub', [q, zp]);
  const out = g.op('Mul', [q, scale]);
  return grouped ? g.op('Reshape', [out, shape]) : out;
}
