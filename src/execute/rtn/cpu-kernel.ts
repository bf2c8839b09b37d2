/**
 * Round-to-nearest on the CPU in plain loops: the same arithmetic as the
 * ONNX graphs of `graphs.ts` (float32 division, rounding to the weight
 * dtype where PyTorch does, clip, round half to even, FP8 / FP4 encoding,
 * packing), one pass over the weight instead of one memory pass per graph
 * operator. The CPU provider runs each graph operator as a separate sweep
 * over the whole weight, which made it slower than PyTorch's fused kernels.
 *
 * Exactness of the float32 steps: JavaScript divides in float64 and
 * `Math.fround` rounds to float32; double rounding through a format with
 * at least 2p + 2 bits is innocuous for division (53 ≥ 2·24 + 2), so the
 * result equals float32 division.
 */
import { roundBf16, roundF16 } from '../dtypes.js';
import { roundFp8E4m3 } from './qparams.js';
import type { WeightKernel } from './weight-kernel.js';
import type { WeightStats } from './quantize-weight.js';

/** Whether the CPU loops handle a kernel: scale groups along rows (not 2-D blocks). */
export function cpuKernelSupports(kernel: WeightKernel): boolean {
  return kernel.view.dims.length === 3;
}

/** Rounds a float32 result to the weight dtype, as PyTorch stores it. */
function rounderFor(kernel: WeightKernel): (x: number) => number {
  return kernel.dtype === 'BF16' ? roundBf16 : kernel.dtype === 'F16' ? roundF16 : Math.fround;
}

/** Every bf16 bit pattern's float32 value: widening by lookup (256 KiB, cache-resident). */
let bf16Table: Float32Array | null = null;
function bf16Values(): Float32Array {
  if (!bf16Table) {
    const bits = new Uint32Array(65536);
    for (let i = 0; i < 65536; i++) bits[i] = i << 16;
    bf16Table = new Float32Array(bits.buffer);
  }
  return bf16Table;
}

/**
 * Per-group min and max of raw bf16 weights, in integers: a bf16 pattern
 * maps to a key that orders like its value (negative patterns reversed).
 */
export function observeBf16Cpu(kernel: WeightKernel, bits: Uint16Array): WeightStats {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const table = bf16Values();
  const groups = a * b;
  const min = new Float32Array(groups);
  const max = new Float32Array(groups);
  for (let g = 0; g < groups; g++) {
    let lo = 0x10000;
    let hi = -1;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i++) {
      const h = bits[i]!;
      const key = h & 0x8000 ? 0xffff - h : h | 0x8000;
      if (key < lo) lo = key;
      if (key > hi) hi = key;
    }
    min[g] = table[lo & 0x8000 ? lo & 0x7fff : 0xffff - lo]!;
    max[g] = table[hi & 0x8000 ? hi & 0x7fff : 0xffff - hi]!;
  }
  return { min, max };
}

/** Per-group min and max of float32 weight values in the kernel's `[a, b, c]` view. */
export function observeCpu(kernel: WeightKernel, w: Float32Array): WeightStats {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const groups = a * b;
  const min = new Float32Array(groups);
  const max = new Float32Array(groups);
  for (let g = 0; g < groups; g++) {
    let lo = Infinity;
    let hi = -Infinity;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i++) {
      const v = w[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    min[g] = lo;
    max[g] = hi;
  }
  return { min, max };
}

/** Round half to even of a small value (|v| < 2^31). */
function rneInt(v: number): number {
  const r = Math.round(v);
  // Math.round sends halves up; an odd result of a tie goes back down to the even neighbour.
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * Integer codes `round(clip(x / s [+ zp]))` in the view's order, with the
 * intermediate results rounded to the weight dtype as compressed-tensors
 * computes them.
 */
export function quantizeIntCpu(kernel: WeightKernel, weight: Float32Array | Uint16Array, scale: Float32Array, zeroPoint: Float32Array | null): Int8Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const qmin = -(2 ** (kernel.args.num_bits - 1));
  const qmax = 2 ** (kernel.args.num_bits - 1) - 1;
  const q = new Int8Array(a * b * c);
  if (weight instanceof Uint16Array) return quantizeIntBf16(kernel, weight, scale, zeroPoint, qmin, qmax, q);
  const w = weight;
  const round = rounderFor(kernel);
  for (let g = 0; g < a * b; g++) {
    const s = scale[g]!;
    const zp = zeroPoint ? zeroPoint[g]! : 0;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i++) {
      let v = round(Math.fround(w[i]! / s));
      if (zeroPoint) v = round(Math.fround(v + zp));
      q[i] = rneInt(v < qmin ? qmin : v > qmax ? qmax : v);
    }
  }
  return q;
}

/** {@link quantizeIntCpu} of raw bf16 weights, widened by lookup. */
function quantizeIntBf16(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array, zeroPoint: Float32Array | null, qmin: number, qmax: number, q: Int8Array): Int8Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const table = bf16Values();
  // Rounding x / s to bf16 moves it by at most |x / s|·2^-8;
  // unless that can carry it across a half-integer, the code is the
  // nearest integer of the float64 quotient, clamped (clip before or
  // after rounding is the same away from ties). Near a half-integer the
  // exact steps run: float32 bits rounded to their high half, ties to even.
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let g = 0; g < a * b; g++) {
    const s = scale[g]!;
    // x·(1/s) is within a few float64 ulps of x/s: far below the margin of the shortcut.
    const inv = 1 / s;
    const zp = zeroPoint ? zeroPoint[g]! : 0;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i++) {
      const x = table[bits[i]!]!;
      if (!zeroPoint) {
        const t = x * inv;
        const r = Math.round(t);
        const d = t - r;
        // Distance to the nearest half-integer against bf16's largest rounding step there.
        if (0.5 - (d < 0 ? -d : d) > (t < 0 ? -t : t) * 0.0039064) {
          q[i] = r < qmin ? qmin : r > qmax ? qmax : r;
          continue;
        }
      }
      f[0] = x / s;
      let h = u[0]!;
      u[0] = (h + 0x7fff + ((h >>> 16) & 1)) & 0xffff0000;
      if (zeroPoint) {
        f[0] = f[0]! + zp;
        h = u[0]!;
        u[0] = (h + 0x7fff + ((h >>> 16) & 1)) & 0xffff0000;
      }
      const v = f[0]!;
      q[i] = rneInt(v < qmin ? qmin : v > qmax ? qmax : v);
    }
  }
  return q;
}

/** Packs signed 4-bit codes eight to an int32 word, element j at bit 4·j (as `pack_to_int32`). */
export function packInt4(q: Int8Array, rows: number, cols: number): Int32Array {
  const words = cols >>> 3;
  const out = new Int32Array(rows * words);
  for (let w = 0; w < out.length; w++) {
    const i = w * 8;
    out[w] =
      (q[i]! + 8) |
      ((q[i + 1]! + 8) << 4) |
      ((q[i + 2]! + 8) << 8) |
      ((q[i + 3]! + 8) << 12) |
      ((q[i + 4]! + 8) << 16) |
      ((q[i + 5]! + 8) << 20) |
      ((q[i + 6]! + 8) << 24) |
      ((q[i + 7]! + 8) << 28);
  }
  return out;
}

/** FP8 E4M3 values `fp8(clip(x / s, ±448))` (MXFP8 and FP8 alike), as float32. */
export function quantizeFp8Cpu(kernel: WeightKernel, w: Float32Array, scale: Float32Array): Float32Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const round = rounderFor(kernel);
  const out = new Float32Array(a * b * c);
  for (let g = 0; g < a * b; g++) {
    const s = scale[g]!;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i++) {
      const v = round(Math.fround(w[i]! / s));
      out[i] = roundFp8E4m3(v < -448 ? -448 : v > 448 ? 448 : v);
    }
  }
  return out;
}

/**
 * FP8 E4M3 byte codes of raw bf16 weights: `fp8(clip(bf16(x / s), ±448))`
 * encoded straight from the bf16 bits (3 of the 7 mantissa bits kept,
 * ties to even, a carry moving into the exponent; subnormals below 2^-6).
 */
export function quantizeFp8Bf16Cpu(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array): Uint8Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const table = bf16Values();
  const out = new Uint8Array(a * b * c);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let g = 0; g < a * b; g++) {
    const s = scale[g]!;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i++) {
      f[0] = table[bits[i]!]! / s;
      const x = u[0]!;
      // bf16 rounding of the float32 quotient, then 448 = 0x43e0 as the largest magnitude.
      let h = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
      const sign = (h >>> 8) & 0x80;
      h &= 0x7fff;
      if (h > 0x43e0) h = 0x43e0;
      let code: number;
      if (h >= 0x3c80) {
        // Normal FP8: exponent rebased from 127 to 7, mantissa 7 → 3 bits.
        const v = h - (120 << 7);
        code = (v + 0x7 + ((v >>> 4) & 1)) >>> 4;
      } else {
        f[0] = table[h]! * 512;
        const m = f[0]!;
        const r = Math.round(m);
        code = r - m === 0.5 && (r & 1) !== 0 ? r - 1 : r;
      }
      out[i] = sign | code;
    }
  }
  return out;
}

/**
 * FP4 E2M1 codes, two per byte (low nibble first): NVFP4 divides by
 * `s / gs` in float32, MXFP4 by `s` with the result rounded to the weight
 * dtype; the magnitude code counts compressed-tensors' rounding thresholds.
 */
export function quantizeFp4Cpu(kernel: WeightKernel, w: Float32Array, scale: Float32Array, globalScale: number | null): Uint8Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const round = rounderFor(kernel);
  const codes = new Uint8Array(a * b * c);
  for (let g = 0; g < a * b; g++) {
    const s = globalScale === null ? scale[g]! : Math.fround(scale[g]! / globalScale);
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i++) {
      const q = Math.fround(w[i]! / s);
      const v = globalScale === null ? round(q) : q;
      const x = v < -6 ? -6 : v > 6 ? 6 : v;
      const m = x < 0 ? -x : x;
      const mag = +(m > 0.25) + +(m >= 0.75) + +(m > 1.25) + +(m >= 1.75) + +(m > 2.5) + +(m >= 3.5) + +(m > 5);
      codes[i] = x < 0 ? mag + 8 : mag;
    }
  }
  const out = new Uint8Array(codes.length >>> 1);
  for (let i = 0; i < out.length; i++) out[i] = codes[2 * i]! | (codes[2 * i + 1]! << 4);
  return out;
}
