/**
 * Scales and zero points from observed per-group min/max, reproducing
 * compressed-tensors 0.18 `calculate_qparams` / `generate_gparam` bit for bit:
 * every intermediate is rounded to the weight's dtype exactly where PyTorch
 * rounds it (bf16 arithmetic is float32 arithmetic rounded to bf16).
 * These arrays hold one value per group, so they are computed here rather
 * than in an ONNX graph.
 */
import { fp8E4m3Bytes, roundBf16, roundF16 } from '../dtypes.js';
import type { WeightDtype } from './weight-kernel.js';

/** Rounds a float32 result to the weight dtype. */
export type Rounder = (x: number) => number;

/** The rounding function and `torch.finfo(dtype)` facts for a weight dtype. */
export function dtypeFacts(dtype: WeightDtype): { round: Rounder; eps: number; tiny: number } {
  if (dtype === 'BF16') return { round: roundBf16, eps: 2 ** -7, tiny: 2 ** -126 };
  if (dtype === 'F16') return { round: roundF16, eps: 2 ** -10, tiny: 2 ** -14 };
  return { round: Math.fround, eps: 2 ** -23, tiny: 2 ** -126 };
}

/** Round half to even, as `torch.round`. */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds to the nearest FP8 E4M3FN value (ties to even), saturating at ±448. */
export function roundFp8E4m3(x: number): number {
  if (Number.isNaN(x)) return x;
  const a = Math.min(Math.abs(x), 448);
  let q: number;
  if (a < 2 ** -6) q = roundHalfEven(a * 512) / 512;
  else {
    // Round the float32 mantissa to 3 bits, ties to even (a carry moves into the exponent).
    f32[0] = a;
    const u = u32[0];
    u32[0] = (u + 0x7ffff + ((u >>> 20) & 1)) & 0xfff00000;
    q = f32[0];
  }
  return x < 0 || Object.is(x, -0) ? -q : q;
}

function absMax(mn: number, mx: number): number {
  return Math.max(Math.abs(Math.min(mn, 0)), Math.max(mx, 0));
}

/** Integer scales (and zero points when asymmetric). */
export function intQparams(min: Float32Array, max: Float32Array, bits: number, symmetric: boolean, dtype: WeightDtype): { scale: Float32Array; zeroPoint: Float32Array | null } {
  const { round, eps } = dtypeFacts(dtype);
  const qmin = -(2 ** (bits - 1));
  const qmax = 2 ** (bits - 1) - 1;
  const scale = new Float32Array(min.length);
  if (symmetric) {
    const half = (qmax - qmin) / 2;
    for (let i = 0; i < min.length; i++) {
      const s = round(absMax(min[i], max[i]) / half);
      scale[i] = s === 0 ? eps : s;
    }
    return { scale, zeroPoint: null };
  }
  const zeroPoint = new Float32Array(min.length);
  for (let i = 0; i < min.length; i++) {
    const lo = Math.min(min[i], 0);
    const hi = Math.max(max[i], 0);
    const s = round(round(hi - lo) / (qmax - qmin));
    let zp = round(qmin - round(lo / s));
    zp = Math.min(Math.max(zp, qmin), qmax);
    // A NaN zero point (empty range: 0/0) becomes 0 when cast to int8.
    zeroPoint[i] = Number.isNaN(zp) ? 0 : roundHalfEven(Math.min(Math.max(zp, -128), 127));
    scale[i] = s === 0 ? eps : s;
  }
  return { scale, zeroPoint };
}

/** FP8 E4M3 weight scales (`amax / 448`). */
export function fp8Qparams(min: Float32Array, max: Float32Array, dtype: WeightDtype): Float32Array {
  const { round, eps } = dtypeFacts(dtype);
  const scale = new Float32Array(min.length);
  for (let i = 0; i < min.length; i++) {
    const s = round(absMax(min[i], max[i]) / 448);
    scale[i] = s === 0 ? eps : s;
  }
  return scale;
}

function roundToPower2(x: number, dtype: WeightDtype): number {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setFloat32(0, x, true);
  const bits = buf.getUint32(0, true);
  // Keep sign and exponent after adding half of the bits below FP4's one mantissa bit.
  if (dtype === 'F16') {
    // float16: add half of the bits below FP4's one mantissa bit (1 << 8), keep sign and exponent.
    if (x === 0) return 0;
    const e = Math.max(Math.floor(Math.log2(x)), -15);
    const exp = 2 ** e > x ? e - 1 : 2 ** (e + 1) <= x ? e + 1 : e;
    if (exp < -14) {
      // Subnormal: the exponent field is zero, so masking leaves zero unless the addition carries into it.
      return x + 2 ** -16 >= 2 ** -14 ? 2 ** -14 : 0;
    }
    const mantissa = Math.round((x / 2 ** exp - 1) * 1024);
    return mantissa + 256 >= 1024 ? 2 ** (exp + 1) : 2 ** exp;
  }
  const masked = dtype === 'BF16' ? (((bits >>> 16) + (1 << 5)) & 0xff80) << 16 : ((bits + (1 << 21)) & 0xff800000) >>> 0;
  buf.setUint32(0, masked >>> 0, true);
  return buf.getFloat32(0, true);
}

/** MX (E8M0) scales: biased exponents and the float scales they stand for. */
export function mxQparams(min: Float32Array, max: Float32Array, bits: 4 | 8, dtype: WeightDtype): { exponent: Uint8Array; scale: Float32Array } {
  const { round } = dtypeFacts(dtype);
  const offset = bits === 4 ? 2 : 8;
  const exponent = new Uint8Array(min.length);
  const scale = new Float32Array(min.length);
  for (let i = 0; i < min.length; i++) {
    const p2 = roundToPower2(absMax(min[i], max[i]), dtype);
    const e = p2 === 0 ? -Infinity : Math.floor(Math.log2(p2));
    const v = roundHalfEven(Math.min(Math.max(127 + e - offset, 0), 255));
    let s = round(Math.fround(2 ** (v - 127)));
    if (s === 0) s = 1;
    scale[i] = s;
    exponent[i] = 127 + Math.floor(Math.log2(s));
  }
  return { exponent, scale };
}

/** NVFP4 global scale from the absolute maximum over a fused group (`generate_gparam`). */
export function nvfp4GlobalScale(amax: number, dtype: WeightDtype): number {
  const { round, tiny } = dtypeFacts(dtype);
  const a = Math.max(amax, tiny);
  // `2688 / tensor` is evaluated by PyTorch as `tensor.reciprocal() * 2688`.
  const g = round(Math.fround(round(Math.fround(1 / a)) * 2688));
  return Number.isFinite(g) ? g : 1;
}

/** NVFP4 per-group FP8 scales given the global scale. */
export function nvfp4Qparams(min: Float32Array, max: Float32Array, globalScale: number, dtype: WeightDtype): Float32Array {
  const { round } = dtypeFacts(dtype);
  const scale = new Float32Array(min.length);
  for (let i = 0; i < min.length; i++) {
    const local = round(absMax(min[i], max[i]) / 6);
    const s = roundFp8E4m3(Math.fround(globalScale * local));
    scale[i] = s === 0 ? 0.125 : s;
  }
  return scale;
}

/**
 * {@link nvfp4Qparams} from each group's largest magnitude as bf16 bits
 * (the symmetric statistics of the CPU loops): a group's scale depends on
 * those bits alone, so it is computed once per distinct value (at most
 * 32,768, with nvfp4Qparams' own arithmetic) and looked up per group.
 * Returns the scales as FP8 E4M3 bytes, and each group's divisor
 * `f32(s / gs)` for the codes.
 */
export function nvfp4ScalesOfAbsBits(absBits: Uint16Array, globalScale: number, dtype: WeightDtype): { scaleBytes: Uint8Array; divisor: Float32Array } {
  let top = 0;
  for (let g = 0; g < absBits.length; g++) if (absBits[g]! > top) top = absBits[g]!;
  const bits = new Uint32Array(top + 1);
  for (let h = 0; h <= top; h++) bits[h] = h << 16;
  const amax = new Float32Array(bits.buffer);
  const scale = nvfp4Qparams(amax.map((v) => -v), amax, globalScale, dtype);
  const byteOf = fp8E4m3Bytes(scale);
  const divisorOf = new Float32Array(top + 1);
  for (let h = 0; h <= top; h++) divisorOf[h] = scale[h]! / globalScale;
  const scaleBytes = new Uint8Array(absBits.length);
  const divisor = new Float32Array(absBits.length);
  for (let g = 0; g < absBits.length; g++) {
    scaleBytes[g] = byteOf[absBits[g]!]!;
    divisor[g] = divisorOf[absBits[g]!]!;
  }
  return { scaleBytes, divisor };
}
