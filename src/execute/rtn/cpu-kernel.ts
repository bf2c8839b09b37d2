/**
 * FP8 round-to-nearest on the CPU in plain loops: the same arithmetic as
 * the ONNX graphs of `graphs.ts` (float32 division, rounding to the weight
 * dtype where PyTorch does, clip, FP8 encoding), one pass over the weight
 * instead of one memory pass per graph operator (see cpuKernelSupports).
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

/**
 * Whether the CPU loops handle a kernel: FP8 and MXFP8 with scale groups
 * along rows (not 2-D blocks). Measured on 2 cores against the graphs on
 * the CPU provider (which use both cores): the FP8 loops are 2× faster;
 * integer and FP4 loops (one core) were 0.8× and are not used.
 */
export function cpuKernelSupports(kernel: WeightKernel): boolean {
  return kernel.view.dims.length === 3 && (kernel.kind === 'fp8' || kernel.kind === 'mxfp8');
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
      // Branch-free (weight signs are random): flip every bit of a negative pattern, the sign bit of a positive one.
      const key = h ^ (0x8000 | (-(h >>> 15) & 0x7fff));
      lo = Math.min(lo, key);
      hi = Math.max(hi, key);
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

/**
 * Round half to even of a small float32 value (|v| < 2^31, at most 24
 * significant bits, so v + 0.5 is exact). Math.floor(v + 0.5) rather than
 * Math.round: V8 lowers Math.round with a data-dependent branch that random
 * weights mispredict half the time (3× slower here).
 */
function rneInt(v: number): number {
  const r = Math.floor(v + 0.5);
  // Halves went up; an odd result of a tie goes back down to the even neighbour.
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
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
        code = rneInt(table[h]! * 512);
      }
      out[i] = sign | code;
    }
  }
  return out;
}
