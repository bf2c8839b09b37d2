/**
 * Round-to-nearest on the CPU in plain loops (FP8, MXFP8, integers with
 * and without zero points, MXFP4, NVFP4): the same arithmetic as the ONNX graphs of
 * `graphs.ts` (float32 division, rounding to the weight dtype where
 * PyTorch does, clip, encoding, packing), one pass over the weight instead
 * of one memory pass per graph operator (see cpuKernelSupports).
 *
 * Exactness of the float32 steps: JavaScript divides in float64 and
 * `Math.fround` rounds to float32; double rounding through a format with
 * at least 2p + 2 bits is innocuous for division (53 ≥ 2·24 + 2), so the
 * result equals float32 division, and likewise for the sum of two float32
 * values (a zero point added to a quotient).
 */
import { roundBf16, roundF16 } from '../dtypes.js';
import { absmaxBitsWasm, fp8CodesWasm, int4WordsWasm, nvfp4BytesWasm } from './wasm-kernels.js';
import { roundFp8E4m3 } from './qparams.js';
import type { WeightKernel } from './weight-kernel.js';
import type { WeightStats } from './quantize-weight.js';

/**
 * Whether the CPU loops handle a kernel (all with scale groups along rows,
 * and FP8 blocks of raw bf16 weights that need no padding): FP8 and MXFP8
 * for every dtype; for raw bf16 weights also
 * integers (packed in int32 words or int8; asymmetric ones through one code
 * table per zero point), MXFP4 and NVFP4.
 * One fused pass per weight beats the graphs on the CPU provider, which
 * sweep memory once per operator (FP8 2×, the others 3–5× on 2 cores).
 */
export function cpuKernelSupports(kernel: WeightKernel): boolean {
  if (kernel.view.dims.length === 4) return blockRows(kernel) !== null;
  if (kernel.view.dims.length !== 3) return false;
  if (kernel.kind === 'fp8' || kernel.kind === 'mxfp8') return true;
  if (kernel.dtype !== 'BF16') return false;
  // Codes fill whole 32-bit words per group; NVFP4 groups are pairs of codes.
  if (kernel.kind === 'nvfp4') return kernel.view.dims[2]! % 2 === 0;
  if (kernel.kind === 'mxfp4') return wordAligned(kernel, 4);
  const layout = intLayout(kernel);
  return kernel.kind === 'int' && layout !== null && (layout === 'int8' || wordAligned(kernel, kernel.args.num_bits));
}

/**
 * FP8 blocks (`[a, bh, c, bw]`, 128×128 for FP8_BLOCK) of raw bf16 weights
 * without padding, as rows of column groups `[a·bh, c, bw]`: each row's
 * groups observed alone, then reduced over the block's rows, and quantized
 * with their block's scale; null for other blocks.
 */
function blockRows(kernel: WeightKernel): WeightKernel | null {
  const [a, bh, c, bw] = kernel.view.dims as [number, number, number, number];
  const [pn, pk] = kernel.view.padded;
  if (kernel.kind !== 'fp8' || kernel.dtype !== 'BF16' || pn !== kernel.shape[0] || pk !== kernel.shape[1] || bw % 8 !== 0) return null;
  return { ...kernel, view: { ...kernel.view, dims: [a * bh, c, bw] } };
}

/** Each block's largest magnitude (see {@link observeAbsBf16Cpu}) of raw bf16 weights in a block view. */
export function observeBlockAbsBf16Cpu(kernel: WeightKernel, bits: Uint16Array): WeightStats {
  const [a, bh, c] = kernel.view.dims as [number, number, number, number];
  const rows = (observeAbsBf16Cpu(blockRows(kernel)!, bits) as AbsStats).absBits;
  const blocks = new Uint16Array(a * c);
  for (let i = 0; i < a; i++) {
    for (let r = i * bh; r < (i + 1) * bh; r++) {
      for (let j = 0; j < c; j++) if (rows[r * c + j]! > blocks[i * c + j]!) blocks[i * c + j] = rows[r * c + j]!;
    }
  }
  return new AbsStats(blocks);
}

/** FP8 codes of raw bf16 weights in a block view, each block divided by its scale (`[a, c]`, block-row major). */
export function quantizeFp8BlocksBf16(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array): Uint8Array {
  const [a, bh, c] = kernel.view.dims as [number, number, number, number];
  const byRow = new Float32Array(a * bh * c);
  for (let r = 0; r < a * bh; r++) byRow.set(scale.subarray(Math.floor(r / bh) * c, (Math.floor(r / bh) + 1) * c), r * c);
  return quantizeFp8Bf16Table(blockRows(kernel)!, bits, byRow);
}

/** How integer codes are stored: packed `bits` to an int32 word (rows word-aligned), or one int8 each. */
function intLayout(kernel: WeightKernel): 'packed' | 'int8' | null {
  const bits = kernel.args.num_bits;
  if (kernel.format === 'pack-quantized') return (bits === 2 || bits === 4 || bits === 8) && (kernel.shape[1] * bits) % 32 === 0 ? 'packed' : null;
  return kernel.outputs[0]?.dtype === 'I8' ? 'int8' : null;
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

/**
 * Statistics of raw bf16 weights for symmetric schemes, whose scales depend
 * only on each group's largest magnitude: that maximum `amax` found on the
 * magnitude bits (which order like the values), reported as min −amax and
 * max amax. A NaN or infinity makes `amax` one too.
 */
export function observeAbsBf16Cpu(kernel: WeightKernel, bits: Uint16Array): WeightStats {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const groups = a * b;
  // Eight at a time in WebAssembly where it runs (wasm-kernels.ts), the same maxima.
  const simd = absmaxBitsWasm(bits, groups, c);
  if (simd) return new AbsStats(simd);
  const hi = new Uint16Array(groups);
  for (let g = 0; g < groups; g++) {
    let m = 0;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i++) m = Math.max(m, bits[i]! & 0x7fff);
    hi[g] = m;
  }
  return new AbsStats(hi);
}

/**
 * {@link WeightStats} of each group's largest magnitude bits: min and max
 * (−amax and amax) are made on first use, so a kernel that reads the bits
 * alone (NVFP4, see `nvfp4ScalesOfAbsBits`) never allocates them.
 */
class AbsStats implements WeightStats {
  private values: { readonly min: Float32Array; readonly max: Float32Array } | null = null;

  constructor(readonly absBits: Uint16Array) {}

  private made(): { readonly min: Float32Array; readonly max: Float32Array } {
    if (this.values) return this.values;
    const table = bf16Values();
    const min = new Float32Array(this.absBits.length);
    const max = new Float32Array(this.absBits.length);
    for (let g = 0; g < max.length; g++) {
      max[g] = table[this.absBits[g]!]!;
      min[g] = -max[g]!;
    }
    return (this.values = { min, max });
  }

  get min(): Float32Array {
    return this.made().min;
  }

  get max(): Float32Array {
    return this.made().max;
  }
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
 * bf16 bits of `bf16(f32(1.mh / 1.ms))` for every pair of 7-bit mantissas,
 * at index `ms << 7 | mh`. Dividing normal bf16 numbers, exponents only
 * shift this result: the quotient's bits are `QUOTIENT[ms << 7 | mh] +
 * (eh − es) · 128` (rounding commutes with scaling by powers of two while
 * the result stays a normal float32; smaller results are divided). One
 * lookup and two additions replace a division.
 */
let quotientTable: Uint16Array | null = null;
function quotients(): Uint16Array {
  if (quotientTable) return quotientTable;
  const table = bf16Values();
  quotientTable = new Uint16Array(1 << 14);
  for (let ms = 0; ms < 128; ms++) {
    for (let mh = 0; mh < 128; mh++) quotientTable[(ms << 7) | mh] = bf16BitsOf(table[0x3f80 | mh]! / table[0x3f80 | ms]!);
  }
  return quotientTable;
}

const quotient32 = new Float32Array(1);
const quotientBits = new Uint32Array(quotient32.buffer);

/** bf16 bits (ties to even) of a value rounded to float32 first, as PyTorch divides bf16 tensors. */
function bf16BitsOf(x: number): number {
  quotient32[0] = x;
  const u = quotientBits[0]!;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Codes of a bf16 quotient: index `q + sign · (cap + 1)` for magnitude bits
 * `q` clamped to `cap` (larger ones saturate) and the weight's sign bit;
 * each entry is the `bits`-wide field written for that value. Sign by
 * lookup, not by a branch: weight signs are random.
 */
interface CodeTable {
  readonly bits: 4 | 8;
  readonly cap: number;
  readonly code: Uint8Array;
}

function codeTable(bits: 4 | 8, cap: number, encode: (v: number, negative: boolean) => number): CodeTable {
  const table = bf16Values();
  const code = new Uint8Array(2 * (cap + 1));
  for (let h = 0; h <= cap; h++) {
    code[h] = encode(table[h]!, false);
    code[cap + 1 + h] = encode(table[h]!, true);
  }
  return { bits, cap, code };
}

/** FP8 E4M3 bytes up to 448 (0x43e0); the weight's sign, −0 included. */
let fp8Codes: CodeTable | null = null;
function fp8Table(): CodeTable {
  return (fp8Codes ??= codeTable(8, 0x43e0, (v, negative) => {
    const h = bf16BitsOf(v);
    let code: number;
    if (h >= 0x3c80) {
      const e = h - (120 << 7);
      code = (e + 0x7 + ((e >>> 4) & 1)) >>> 4;
    } else code = rneInt(v * 512);
    return negative ? code | 0x80 : code;
  }));
}

/** FP4 E2M1 codes up to 6 (0x40c0): thresholds passed with compressed-tensors' ties, 8 added below zero (not for −0). */
let fp4Codes: CodeTable | null = null;
function fp4Table(): CodeTable {
  return (fp4Codes ??= codeTable(4, 0x40c0, (v, negative) => {
    const mag = +(v > 0.25) + +(v >= 0.75) + +(v > 1.25) + +(v >= 1.75) + +(v > 2.5) + +(v >= 3.5) + +(v > 5);
    return negative && v !== 0 ? mag | 8 : mag;
  }));
}

/**
 * Symmetric `bits`-bit integers `round(clip(v, qmin, qmax))` (half to even)
 * up to 255 (0x437f): offset to unsigned when packed, else int8 bytes.
 */
const intCodes = new Map<string, CodeTable>();
function intTable(bits: number, packed: boolean): CodeTable {
  const key = `${bits}${packed ? 'p' : ''}`;
  let t = intCodes.get(key);
  if (!t) {
    const qmax = 2 ** (bits - 1) - 1;
    t = codeTable(packed ? (bits === 8 ? 8 : 4) : 8, 0x437f, (v, negative) => {
      const m = rneInt(v);
      const q = negative ? -Math.min(m, qmax + 1) : Math.min(m, qmax);
      return packed ? q + qmax + 1 : q & 0xff;
    });
    intCodes.set(key, t);
  }
  return t;
}

/**
 * Asymmetric `bits`-bit integers `round(clip(bf16(v + zp), qmin, qmax))`
 * (half to even) of signed quotients `v` up to ±255 (0x437f; larger ones
 * clip alike) for one zero point `zp`: offset to unsigned when packed, else
 * int8 bytes. One table per zero point in use.
 */
function asymTable(bits: number, packed: boolean, zp: number): CodeTable {
  const key = `${bits}${packed ? 'p' : ''}a${zp}`;
  let t = intCodes.get(key);
  if (!t) {
    const qmin = -(2 ** (bits - 1));
    const qmax = 2 ** (bits - 1) - 1;
    t = codeTable(packed ? (bits === 8 ? 8 : 4) : 8, 0x437f, (v, negative) => {
      const q = rneInt(Math.min(Math.max(roundBf16((negative ? -v : v) + zp), qmin), qmax));
      return packed ? q - qmin : q & 0xff;
    });
    intCodes.set(key, t);
  }
  return t;
}

/** A group's scale as bf16 bits, or 0 when it is not a positive finite bf16 value (then every element divides). */
function scaleBits(s: number): number {
  const h = bf16BitsOf(s);
  return s > 0 && h < 0x7f80 && bf16Values()[h] === s ? h : 0;
}

/**
 * Codes of raw bf16 weights `x` quantized as `encode(bf16(f32(x / s)))`,
 * `width` bits each (`width` ≤ the table's field; 2- or 4-bit integers),
 * packed little-endian into 32-bit words, element i at bit (i mod per
 * word) · width. The quotient's bits come from {@link quotients}, not a
 * division, wherever weight and scale are normal numbers. Groups must be
 * whole words (callers check).
 */
function quotientCodes(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array, tables: CodeTable | ((g: number) => CodeTable), width: number): Uint32Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const quot = quotients();
  const values = bf16Values();
  const tableOf = typeof tables === 'function' ? tables : () => tables;
  const { cap } = tableOf(0);
  const stride = cap + 1;
  const per = 32 / width;
  const shift = Math.log2(per);
  const out = new Uint32Array((a * b * c) >>> shift);
  for (let g = 0; g < a * b; g++) {
    const code = tableOf(g).code;
    const s = scale[g]!;
    const sb = scaleBits(s);
    const fast = (sb & 0x7f80) !== 0;
    const base = (sb & 0x7f) << 7;
    const se = sb & 0x7f80;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i += per) {
      let word = 0;
      for (let j = 0; j < per; j++) {
        const h = bits[i + j]!;
        const m = h & 0x7fff;
        let q = fast && m >= 0x80 ? quot[base | (m & 0x7f)]! + (m & 0x7f80) - se : 0;
        // Below normal float32 (rare): the division itself, which keeps a subnormal quotient's sign (FP4 writes it).
        if (q < 0x80) q = bf16BitsOf(values[m]! / s) & 0x7fff;
        q = q > cap ? cap : q;
        word |= code[q + (h >>> 15) * stride]! << (j * width);
      }
      out[i >>> shift] = word >>> 0;
    }
  }
  return out;
}

/** {@link quotientCodes} for 8-bit fields one byte at a time, for groups that are not whole words (slower than whole words). */
function quotientBytes(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array, tables: CodeTable | ((g: number) => CodeTable)): Uint8Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const quot = quotients();
  const values = bf16Values();
  const tableOf = typeof tables === 'function' ? tables : () => tables;
  const { cap } = tableOf(0);
  const stride = cap + 1;
  const out = new Uint8Array(a * b * c);
  for (let g = 0; g < a * b; g++) {
    const code = tableOf(g).code;
    const s = scale[g]!;
    const sb = scaleBits(s);
    const fast = (sb & 0x7f80) !== 0;
    const base = (sb & 0x7f) << 7;
    const se = sb & 0x7f80;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i++) {
      const h = bits[i]!;
      const m = h & 0x7fff;
      let q = fast && m >= 0x80 ? quot[base | (m & 0x7f)]! + (m & 0x7f80) - se : 0;
      if (q < 0x80) q = bf16BitsOf(values[m]! / s) & 0x7fff;
      out[i] = code[(q > cap ? cap : q) + (h >>> 15) * stride]!;
    }
  }
  return out;
}

/** Whether the groups of a view are whole words of `width`-bit codes. */
function wordAligned(kernel: WeightKernel, width: number): boolean {
  return kernel.view.dims[2]! % (32 / width) === 0;
}

/**
 * FP8 E4M3 byte codes of raw bf16 weights, `fp8(clip(bf16(x / s), ±448))`;
 * the sign is the weight's, −0 included. In WebAssembly where it runs
 * (wasm-kernels.ts), else {@link fp8CodesTable}: the same codes.
 */
export function quantizeFp8Bf16Table(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array): Uint8Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  return fp8CodesWasm(bits, scale, a * b, c) ?? fp8CodesTable(kernel, bits, scale);
}

/** {@link quantizeFp8Bf16Table} in JavaScript, without a division per element (see {@link quotientCodes}). */
export function fp8CodesTable(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array): Uint8Array {
  if (kernel.view.dims[2]! % 4 !== 0) return quotientBytes(kernel, bits, scale, fp8Table());
  return new Uint8Array(quotientCodes(kernel, bits, scale, fp8Table(), 8).buffer);
}

/**
 * Symmetric integer codes `round(clip(bf16(x / s), qmin, qmax))` of raw bf16
 * weights: packed into int32 words as compressed-tensors `pack_to_int32`
 * (offset to unsigned, element c at bit c·bits of its row), or int8.
 */
export function quantizeIntBf16Table(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array, zeroPoint: Float32Array | null = null): Int32Array | Int8Array {
  const nbits = kernel.args.num_bits;
  const packed = intLayout(kernel) === 'packed';
  const tables = zeroPoint ? (g: number): CodeTable => asymTable(nbits, packed, zeroPoint[g]!) : intTable(nbits, packed);
  if (!packed && !wordAligned(kernel, 8)) return new Int8Array(quotientBytes(kernel, bits, scale, tables).buffer);
  if (!packed) return new Int8Array(quotientCodes(kernel, bits, scale, tables, 8).buffer);
  if (nbits === 4 && !zeroPoint) {
    // Eight at a time in WebAssembly where it runs (wasm-kernels.ts), the same words.
    const [a, b, c] = kernel.view.dims as [number, number, number];
    const words = int4WordsWasm(bits, scale, a * b, c);
    if (words) return words;
  }
  return new Int32Array(quotientCodes(kernel, bits, scale, tables, nbits).buffer);
}

/** Packed symmetric 4-bit words of raw bf16 weights by the table walk alone (what {@link quantizeIntBf16Table} falls back to). */
export function int4WordsTable(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array): Int32Array {
  return new Int32Array(quotientCodes(kernel, bits, scale, intTable(4, true), 4).buffer);
}

/**
 * MXFP4 bytes of raw bf16 weights, two E2M1 codes each (low nibble first):
 * `fp4(clip(bf16(x / s), ±6))`, 8 added for values below zero (not −0).
 */
export function quantizeMxfp4Bf16Table(kernel: WeightKernel, bits: Uint16Array, scale: Float32Array): Uint8Array {
  return new Uint8Array(quotientCodes(kernel, bits, scale, fp4Table(), 4).buffer);
}

/**
 * NVFP4 bytes of raw bf16 weights, two E2M1 codes each (low nibble first):
 * `fp4(clip(x / d, ±6))` in float32 with each group's divisor
 * `d = f32(s / gs)` (no bf16 rounding here, as compressed-tensors divides
 * by the float32 scale), 8 added below zero.
 */
export function quantizeNvfp4Bf16Cpu(kernel: WeightKernel, bits: Uint16Array, divisor: Float32Array): Uint8Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  return nvfp4BytesWasm(bits, divisor, a * b, c) ?? nvfp4BytesTable(kernel, bits, divisor);
}

/** {@link quantizeNvfp4Bf16Cpu} as a table walk, given each group's divisor `f32(s / gs)` (the fallback of the WebAssembly kernel, and its reference). */
export function nvfp4BytesTable(kernel: WeightKernel, bits: Uint16Array, divisor: Float32Array): Uint8Array {
  const [a, b, c] = kernel.view.dims as [number, number, number];
  const values = bf16Values();
  const byTop = fp4ByTopBits();
  const out = new Uint8Array((a * b * c) >>> 1);
  const x = new Float32Array(2);
  const u = new Uint32Array(x.buffer);
  for (let g = 0; g < a * b; g++) {
    const d = divisor[g]!;
    const end = (g + 1) * c;
    for (let i = g * c; i < end; i += 2) {
      x[0] = values[bits[i]!]! / d;
      x[1] = values[bits[i + 1]!]! / d;
      const u0 = u[0]!;
      const u1 = u[1]!;
      // Below zero (not −0): the sign bit and any magnitude.
      const c0 = byTop[(((u0 & 0x7fffffff) >>> 19) & 0xffe) | (((u0 & 0xfffff) + 0xfffff) >>> 20)]! | ((u0 >>> 28) & (((u0 & 0x7fffffff) + 0x7fffffff) >>> 28) & 8);
      const c1 = byTop[(((u1 & 0x7fffffff) >>> 19) & 0xffe) | (((u1 & 0xfffff) + 0xfffff) >>> 20)]! | ((u1 >>> 28) & (((u1 & 0x7fffffff) + 0x7fffffff) >>> 28) & 8);
      out[i >>> 1] = c0 | (c1 << 4);
    }
  }
  return out;
}

/**
 * E2M1 magnitude codes by the float32 bits of |x| >>> 20 (exponent and 3
 * mantissa bits), times 2, plus 1 when lower bits are set: the thresholds
 * 0.25, 0.75, 1.25, 1.75, 2.5, 3.5 and 5 all have 3 mantissa bits, so this
 * tells them apart from values just above (strict thresholds) without a branch.
 */
let fp4ByTop: Uint8Array | null = null;
function fp4ByTopBits(): Uint8Array {
  if (fp4ByTop) return fp4ByTop;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  fp4ByTop = new Uint8Array(1 << 12);
  for (let top = 0; top < 1 << 11; top++) {
    for (const low of [0, 1]) {
      u[0] = (top << 20) | low;
      const v = f[0]!;
      fp4ByTop[(top << 1) | low] = Number.isNaN(v) ? 7 : +(v > 0.25) + +(v >= 0.75) + +(v > 1.25) + +(v >= 1.75) + +(v > 2.5) + +(v >= 3.5) + +(v > 5);
    }
  }
  return fp4ByTop;
}
