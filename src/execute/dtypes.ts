/**
 * safetensors element types and the exact float conversions the executor
 * needs (bf16 and fp8 E4M3 have no native JS type, so they are bit-level).
 */

/** safetensors dtype names the executor reads and writes. */
export type SafetensorsDtype = 'BF16' | 'F16' | 'F32' | 'F64' | 'F8_E4M3' | 'I8' | 'U8' | 'I16' | 'I32' | 'I64' | 'BOOL';

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  BF16: 2,
  F16: 2,
  F32: 4,
  F64: 8,
  F8_E4M3: 1,
  I8: 1,
  U8: 1,
  I16: 2,
  I32: 4,
  I64: 8,
  BOOL: 1,
};

/** Whether `s` names a dtype in {@link DTYPE_BYTES}. */
export function isSafetensorsDtype(s: string): s is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds a float32 value to the nearest bfloat16 (ties to even), returned as a number. */
export function roundBf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7f800000) === 0x7f800000) return f32[0];
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32[0];
}

/**
 * {@link roundBf16} of every element of `values`, in place: the float32 bits
 * rounded in one loop, without a call per element. Returns `values`.
 */
export function roundBf16InPlace(values: Float32Array): Float32Array {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i]!;
    if ((b & 0x7f800000) !== 0x7f800000) u[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  }
  return values;
}

/** Rounds a float32 value to the nearest float16 (ties to even, overflow to ±Infinity, subnormals kept). */
export function roundF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return x > 0 ? Infinity : -Infinity;
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  // Correct log2's rounding at exact powers of two.
  const exp = 2 ** e > a && e > -14 ? e - 1 : 2 ** (e + 1) <= a ? e + 1 : e;
  const step = 2 ** (exp - 10);
  const q = a / step;
  const f = Math.floor(q);
  const d = q - f;
  const r = (d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f) * step;
  return x < 0 ? -r : r;
}

/** Narrows float32 values (exactly representable in float16) to raw f16 bytes. */
export function f16Bytes(values: Float32Array): Uint8Array {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const bits = u[i];
    const sign = (bits >>> 16) & 0x8000;
    const exp = ((bits >>> 23) & 0xff) - 127;
    const man = bits & 0x7fffff;
    if ((bits & 0x7fffffff) === 0) out[i] = sign;
    else if (exp === 128) out[i] = sign | 0x7c00 | (man ? 0x200 : 0);
    else if (exp >= -14) out[i] = sign | ((exp + 15) << 10) | (man >>> 13);
    else out[i] = sign | Math.round(Math.abs(values[i]) * 2 ** 24);
  }
  return new Uint8Array(out.buffer);
}

/** Widens raw little-endian bf16 or f16 or f32 bytes to float32 values. */
export function toFloat32(bytes: Uint8Array, dtype: 'BF16' | 'F16' | 'F32'): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  if (dtype === 'F32') {
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const src = uint16View(bytes);
  if (dtype === 'BF16') {
    // A bf16 value is the high half of its float32.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
    return out;
  }
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) bits[i] = f16ToF32Bits(src[i]);
  return out;
}

/** The bytes as 16-bit words: a view when aligned, else a copy. */
export function uint16View(bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  const out = new Uint16Array(bytes.byteLength >> 1);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0x1f) return sign | 0x7f800000 | (man << 13);
  if (exp !== 0) return sign | ((exp + 112) << 23) | (man << 13);
  if (man === 0) return sign;
  f32[0] = man * 2 ** -24;
  return sign | u32[0];
}

/** Narrows float32 values (exactly representable in bf16) to raw bf16 bytes. */
export function bf16Bytes(values: Float32Array): Uint8Array {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = u[i] >>> 16;
  return new Uint8Array(out.buffer);
}

/** FP8 E4M3FN code by the top 12 bits (sign, exponent, 3 mantissa bits) of an exact float32 value. */
const FP8_CODE_BY_TOP12 = (() => {
  const table = new Uint8Array(4096);
  const v = new Float32Array(1);
  const b = new Uint32Array(v.buffer);
  for (let code = 0; code < 256; code++) {
    const e = (code >> 3) & 15;
    const m = code & 7;
    if (e === 15 && m === 7) continue;
    v[0] = (e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7)) * (code & 0x80 ? -1 : 1);
    table[b[0] >>> 20] = code;
  }
  return table;
})();

/**
 * Encodes float32 values that are exactly representable in FP8 E4M3FN
 * (as produced by an FP8 cast) into their byte codes.
 */
export function fp8E4m3Bytes(values: Float32Array): Uint8Array {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = FP8_CODE_BY_TOP12[u[i] >>> 20];
  return out;
}

/** Float32 values as raw bytes of a model dtype (bf16 and f16 rounded to nearest even). */
export function storedBytes(values: Float32Array, dtype: 'bfloat16' | 'float16' | 'float32'): Uint8Array {
  if (dtype === 'bfloat16') return bf16Bytes(values);
  if (dtype === 'float16') return f16Bytes(values);
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

/** The arrays one after another in a new array. */
export function concatFloat32(parts: readonly Float32Array[]): Float32Array {
  return concatInto(new Float32Array(parts.reduce((n, p) => n + p.length, 0)), parts);
}

/** The 16-bit arrays one after another in a new array. */
export function concatUint16(parts: readonly Uint16Array[]): Uint16Array {
  return concatInto(new Uint16Array(parts.reduce((n, p) => n + p.length, 0)), parts);
}

function concatInto<T extends Float32Array | Uint16Array>(out: T, parts: readonly T[]): T {
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
