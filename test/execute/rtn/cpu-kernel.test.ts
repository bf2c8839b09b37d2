/**
 * The CPU loops of round-to-nearest against the definition they shortcut:
 * integer codes `round_half_even(clip(bf16(x / s) [+ zp]))` with every step
 * rounded where PyTorch rounds it, on values crowded around the ties.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { roundBf16 } from '../../../src/execute/dtypes.js';
import { observeBf16Cpu, quantizeFp8Bf16Cpu, quantizeIntCpu } from '../../../src/execute/rtn/cpu-kernel.js';
import { fp8E4m3Bytes } from '../../../src/execute/dtypes.js';
import { roundFp8E4m3 } from '../../../src/execute/rtn/qparams.js';
import { roundHalfEven } from '../../../src/execute/rtn/qparams.js';
import { planWeightKernel } from '../../../src/execute/rtn/weight-kernel.js';
import { presetScheme } from '../../../src/ir/presets.js';

/** A bf16 value from its 16 bits (finite ones only). */
const bf16 = fc.integer({ min: 0, max: 0xffff }).filter((b) => (b & 0x7f80) !== 0x7f80).map((b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!);
const positiveBf16 = fc.integer({ min: 0x0080, max: 0x7f7f }).map((b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!);

function reference(x: number, s: number, zp: number | null, bits: number): number {
  let v = roundBf16(Math.fround(x / s));
  if (zp !== null) v = roundBf16(Math.fround(v + zp));
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  return roundHalfEven(Math.min(hi, Math.max(lo, v)));
}

describe('observeBf16Cpu', () => {
  test('finds the same min and max as comparing the values', () => {
    const kernel = planWeightKernel(presetScheme('W4A16', ['Linear'])!, [1, 128], 'BF16');
    fc.assert(
      fc.property(fc.array(bf16, { minLength: 128, maxLength: 128 }), (values) => {
        const w = Float32Array.from(values);
        const stats = observeBf16Cpu(kernel, Uint16Array.from(new Uint32Array(w.buffer), (u) => u >>> 16));
        // -0 and +0 compare equal; either may be reported.
        expect(stats.min[0]! === Math.min(...w)).toBe(true);
        expect(stats.max[0]! === Math.max(...w)).toBe(true);
      }),
    );
  });
});

describe('quantizeIntCpu (bf16 weights)', () => {
  for (const [scheme, bits] of [['W4A16', 4], ['W8A16', 8], ['W4A16_ASYM', 4]] as const) {
    test(`${scheme}: every code equals the step-by-step definition`, () => {
      const kernel = planWeightKernel(presetScheme(scheme, ['Linear'])!, [1, 128], 'BF16');
      const asym = scheme.endsWith('ASYM');
      fc.assert(
        fc.property(
          positiveBf16,
          fc.array(fc.oneof(bf16, fc.integer({ min: -(2 ** (bits + 1)), max: 2 ** (bits + 1) }).map((h) => h / 2)), { minLength: 128, maxLength: 128 }),
          fc.integer({ min: -8, max: 7 }),
          (s, raw, zp) => {
            // Half the values sit exactly on, or one bf16 step around, half-integer multiples of the scale.
            const w = Float32Array.from(raw, (v, i) => (i % 2 === 0 ? roundBf16(v) : roundBf16(Math.fround(v * s * (1 + ((i % 3) - 1) * 2 ** -8)))));
            const rawBits = Uint16Array.from(new Uint32Array(w.buffer), (u) => u >>> 16);
            const scale = Float32Array.of(s);
            const zero = asym ? Float32Array.of(zp) : null;
            // Raw bf16 patterns (the path apply takes), and float32 values (the general loop).
            for (const q of [quantizeIntCpu(kernel, rawBits, scale, zero), quantizeIntCpu(kernel, w, scale, zero)]) {
              for (let i = 0; i < w.length; i++) expect(q[i], `x=${w[i]} s=${s}`).toBe(reference(w[i]!, s, asym ? zp : null, bits) + 0);
            }
          },
        ),
        { numRuns: 300 },
      );
    });
  }
});

describe('quantizeFp8Bf16Cpu', () => {
  test('encodes fp8(clip(bf16(x / s), ±448)) byte for byte, subnormals, ties, saturation and -0 included', () => {
    const kernel = planWeightKernel(presetScheme('FP8_DYNAMIC', ['Linear'])!, [1, 128], 'BF16');
    fc.assert(
      fc.property(positiveBf16, fc.array(bf16, { minLength: 128, maxLength: 128 }), (s, raw) => {
        const w = Float32Array.from(raw, (v) => roundBf16(v));
        const rawBits = Uint16Array.from(new Uint32Array(w.buffer), (u) => u >>> 16);
        const want = fp8E4m3Bytes(Float32Array.from(w, (x) => roundFp8E4m3(Math.min(448, Math.max(-448, roundBf16(Math.fround(x / s)))))));
        expect([...quantizeFp8Bf16Cpu(kernel, rawBits, Float32Array.of(s))]).toEqual([...want]);
      }),
      { numRuns: 500 },
    );
  });
});
