/**
 * The WebAssembly kernels (rtn/wasm-kernels.ts) against the JavaScript
 * table walks they replace: FP8 codes and packed symmetric 4-bit words for
 * every bf16 pattern, with scales that are and are not bf16 values and
 * quotients that underflow, saturate or overflow; group sizes that are and
 * are not whole vectors; weights split into several calls; and the group
 * maxima the symmetric schemes' observers take.
 */
import { describe, expect, it } from 'vitest';
import { fp8CodesTable, int4WordsTable, nvfp4BytesTable, quantizeFp8Bf16Table } from '../../../src/execute/rtn/cpu-kernel.js';
import { absmaxBitsWasm, fp8CodesWasm, int4WordsWasm, nvfp4BytesWasm } from '../../../src/execute/rtn/wasm-kernels.js';
import type { WeightKernel } from '../../../src/execute/rtn/weight-kernel.js';

const kernelOf = (a: number, b: number, c: number): WeightKernel => ({ kind: 'fp8', view: { dims: [a, b, c] } }) as unknown as WeightKernel;

/** A linear congruential generator (deterministic test data). */
function lcg(seed: number): () => number {
  return () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
}

/** Patterns whose exponent field is all ones (infinities, NaN): `apply` refuses such weights before quantizing. */
const nonFinite = (h: number): boolean => (h & 0x7f80) === 0x7f80;

describe('FP8 codes in WebAssembly', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const scales = [1, 0.0078125 * 3, 1e-3, 3.3e-7, 1e30, 2.5e-39, 448, 0.1, 7.7, 1.7e38];

  for (const mode of ['scalar', 'simd8'] as const) {
    it(`${mode}: every bf16 pattern gives the table walk's code, for every scale`, () => {
      for (const s of scales) {
        const want = fp8CodesTable(kernelOf(1, 1, 65536), all, Float32Array.of(s));
        const got = fp8CodesWasm(all, Float32Array.of(s), 1, 65536, mode);
        expect(got, 'WebAssembly with SIMD runs on Node 20').not.toBeNull();
        for (let h = 0; h < 65536; h++) if (!nonFinite(h) && got![h] !== want[h]) expect(`${s} 0x${h.toString(16)}: ${got![h]}`).toBe(`${s} 0x${h.toString(16)}: ${want[h]}`);
      }
    });
  }

  it('groups of any size, several calls into the module, one scale per group', () => {
    const next = lcg(3);
    for (const [groups, size] of [
      [7, 13],
      [3, 4096 * 300],
      [1030, 1024],
    ] as const) {
      const bits = new Uint16Array(groups * size);
      for (let i = 0; i < bits.length; i++) {
        let h = next() >>> 16;
        if (nonFinite(h)) h &= 0xbfff;
        bits[i] = h;
      }
      const scale = Float32Array.from({ length: groups }, () => 2 ** ((next() % 40) - 30) * (1 + (next() % 1000) / 1000));
      const want = fp8CodesTable(kernelOf(groups, 1, size), bits, scale);
      expect(Buffer.from(quantizeFp8Bf16Table(kernelOf(groups, 1, size), bits, scale)).equals(Buffer.from(want)), `${groups} × ${size}`).toBe(true);
      for (const mode of ['scalar', ...(size % 8 === 0 ? (['simd8'] as const) : []), undefined] as const) {
        expect(Buffer.from(fp8CodesWasm(bits, scale, groups, size, mode)!).equals(Buffer.from(want)), `${groups} × ${size} ${mode ?? 'default'}`).toBe(true);
      }
    }
  });

  it("each group's largest magnitude bits, eight at a time, as a plain loop finds them (infinities and NaN largest)", () => {
    const next = lcg(9);
    for (const [groups, size] of [
      [5, 8],
      [64, 4096],
      [2, 1 << 21],
    ] as const) {
      const bits = Uint16Array.from({ length: groups * size }, () => (next() >>> 16) & (next() % 3 === 0 ? 0xffff : 0xbfff));
      const want = Uint16Array.from({ length: groups }, (_, g) => {
        let hi = 0;
        for (let i = g * size; i < (g + 1) * size; i++) hi = Math.max(hi, bits[i]! & 0x7fff);
        return hi;
      });
      expect(absmaxBitsWasm(bits, groups, size), `${groups} × ${size}`).toEqual(want);
    }
    // Sizes that are not whole vectors are left to the caller's loop.
    expect(absmaxBitsWasm(new Uint16Array(12), 1, 12)).toBeNull();
  });

  it('symmetric 4-bit words: every bf16 pattern packed as the table walk packs it, for every scale', () => {
    // Words are eight patterns each; those holding an infinity or NaN are skipped (apply refuses such weights).
    const skip = (word: number): boolean => Array.from({ length: 8 }, (_, j) => nonFinite(word * 8 + j)).some(Boolean);
    for (const s of [...scales, 0.5, 2, 1 / 7]) {
      const want = int4WordsTable(kernelOf(1, 1, 65536), all, Float32Array.of(s));
      const got = int4WordsWasm(all, Float32Array.of(s), 1, 65536);
      expect(got, 'WebAssembly with SIMD runs on Node 20').not.toBeNull();
      for (let i = 0; i < want.length; i++) if (!skip(i) && got![i] !== want[i]) expect(`${s} word ${i}: ${got![i]! >>> 0}`).toBe(`${s} word ${i}: ${want[i]! >>> 0}`);
    }
    // Groups of 128 with a scale each, over several calls into the module.
    const next = lcg(5);
    const groups = 3 * 8192 + 5;
    const bits = Uint16Array.from({ length: groups * 128 }, () => (next() >>> 16) & 0xbfff);
    const scale = Float32Array.from({ length: groups }, () => 2 ** ((next() % 30) - 20));
    expect(Buffer.from(int4WordsWasm(bits, scale, groups, 128)!.buffer).equals(Buffer.from(int4WordsTable(kernelOf(groups, 1, 128), bits, scale).buffer))).toBe(true);
    expect(int4WordsWasm(new Uint16Array(12), Float32Array.of(1), 1, 12)).toBeNull();
  });

  it('NVFP4 bytes: every bf16 pattern coded as the table walk codes it, for every divisor, and groups split over several calls', () => {
    // Bytes are two patterns each; those holding an infinity or NaN are skipped (apply refuses such weights).
    const skip = (byte: number): boolean => nonFinite(byte * 2) || nonFinite(byte * 2 + 1);
    // Divisors f32(s / gs): ordinary, tiny (quotients overflow to infinity), huge (quotients underflow), and subnormal.
    for (const d of [1, 0.5, 1 / 6, 3.3e-7, 1e-38, 2.5e-42, 1.7e38, 0.07, 448 / 2688]) {
      const want = nvfp4BytesTable(kernelOf(1, 1, 65536), all, Float32Array.of(d));
      const got = nvfp4BytesWasm(all, Float32Array.of(d), 1, 65536);
      expect(got, 'WebAssembly with SIMD runs on Node 20').not.toBeNull();
      for (let i = 0; i < want.length; i++) if (!skip(i) && got![i] !== want[i]) expect(`${d} byte ${i}: ${got![i]}`).toBe(`${d} byte ${i}: ${want[i]}`);
    }
    const next = lcg(5);
    for (const [groups, size] of [
      [3, 8],
      [70000, 16],
      [5, 1 << 20],
    ] as const) {
      const bits = Uint16Array.from({ length: groups * size }, () => (next() >>> 16) & 0xbfff);
      const divisor = Float32Array.from({ length: groups }, () => 2 ** ((next() % 30) - 20) * (1 + (next() % 1000) / 1000));
      expect(Buffer.from(nvfp4BytesWasm(bits, divisor, groups, size)!).equals(Buffer.from(nvfp4BytesTable(kernelOf(groups, 1, size), bits, divisor))), `${groups} × ${size}`).toBe(true);
    }
    expect(nvfp4BytesWasm(new Uint16Array(12), Float32Array.of(1), 1, 12)).toBeNull();
  });
});
