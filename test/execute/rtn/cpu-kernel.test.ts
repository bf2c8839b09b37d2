/**
 * The CPU loops of FP8 round-to-nearest against the step-by-step definition
 * (every step rounded where PyTorch rounds it), and their bf16 observer.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { roundBf16 } from '../../../src/execute/dtypes.js';
import { observeBf16Cpu, quantizeFp8Bf16Cpu } from '../../../src/execute/rtn/cpu-kernel.js';
import { fp8E4m3Bytes } from '../../../src/execute/dtypes.js';
import { roundFp8E4m3 } from '../../../src/execute/rtn/qparams.js';
import { planWeightKernel } from '../../../src/execute/rtn/weight-kernel.js';
import { presetScheme } from '../../../src/ir/presets.js';

/** A bf16 value from its 16 bits (finite ones only). */
const bf16 = fc.integer({ min: 0, max: 0xffff }).filter((b) => (b & 0x7f80) !== 0x7f80).map((b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!);
const positiveBf16 = fc.integer({ min: 0x0080, max: 0x7f7f }).map((b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!);

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
