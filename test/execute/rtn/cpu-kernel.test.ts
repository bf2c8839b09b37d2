/**
 * The CPU loops of FP8 round-to-nearest against the step-by-step definition
 * (every step rounded where PyTorch rounds it), and their bf16 observer.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { roundBf16 } from '../../../src/execute/dtypes.js';
import { cpuKernelSupports, observeAbsBf16Cpu, observeBf16Cpu, quantizeFp8Bf16Table } from '../../../src/execute/rtn/cpu-kernel.js';
import { fusedGlobalScale, groupedWeight, observesInGraph, observeWeight, quantizeObserved, quantizeObservedStack, quantizeWeight, stackKey } from '../../../src/execute/rtn/quantize-weight.js';
import { GraphRuntime } from '../../../src/execute/runtime.js';
import { fp8E4m3Bytes } from '../../../src/execute/dtypes.js';
import { nvfp4GlobalScale, nvfp4Qparams, nvfp4ScalesOfAbsBits, roundFp8E4m3 } from '../../../src/execute/rtn/qparams.js';
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

describe('observeAbsBf16Cpu', () => {
  test('reports each group as ±(its largest magnitude)', () => {
    const kernel = planWeightKernel(presetScheme('NVFP4A16', ['Linear'])!, [1, 128], 'BF16');
    fc.assert(
      fc.property(fc.array(bf16, { minLength: 128, maxLength: 128 }), (values) => {
        const w = Float32Array.from(values);
        const stats = observeAbsBf16Cpu(kernel, Uint16Array.from(new Uint32Array(w.buffer), (u) => u >>> 16));
        for (let g = 0; g < 8; g++) {
          const amax = Math.max(...Array.from(w.subarray(g * 16, (g + 1) * 16), Math.abs));
          expect([stats.min[g], stats.max[g]]).toEqual([-amax, amax]);
        }
      }),
    );
  });

  test('a NaN or an infinity becomes the maximum', () => {
    const kernel = planWeightKernel(presetScheme('FP8_DYNAMIC', ['Linear'])!, [1, 4], 'BF16');
    expect(observeAbsBf16Cpu(kernel, Uint16Array.of(0x3f80, 0xffc1, 0, 0)).max[0]).toBeNaN();
    expect(observeAbsBf16Cpu(kernel, Uint16Array.of(0x3f80, 0xff80, 0, 0)).max[0]).toBe(Infinity);
  });
});

describe('quantizeFp8Bf16Table', () => {
  test('encodes fp8(clip(bf16(x / s), ±448)) byte for byte, subnormals, ties, saturation and -0 included', () => {
    const kernel = planWeightKernel(presetScheme('FP8_DYNAMIC', ['Linear'])!, [1, 128], 'BF16');
    fc.assert(
      fc.property(positiveBf16, fc.array(bf16, { minLength: 128, maxLength: 128 }), (s, raw) => {
        const w = Float32Array.from(raw, (v) => roundBf16(v));
        const rawBits = Uint16Array.from(new Uint32Array(w.buffer), (u) => u >>> 16);
        const want = fp8E4m3Bytes(Float32Array.from(w, (x) => roundFp8E4m3(Math.min(448, Math.max(-448, roundBf16(Math.fround(x / s)))))));
        expect([...quantizeFp8Bf16Table(kernel, rawBits, Float32Array.of(s))]).toEqual([...want]);
      }),
      { numRuns: 500 },
    );
  });
});

/** Finite bf16 patterns, most near a row's typical magnitude, some anywhere (subnormals, zeros, −0, huge). */
const weightBits = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0x3c00, max: 0x3e00 }).chain((m) => fc.boolean().map((neg) => (neg ? m | 0x8000 : m))) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }).filter((b) => (b & 0x7f80) !== 0x7f80) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x00ff }).chain((m) => fc.boolean().map((neg) => (neg ? m | 0x8000 : m))) },
);

describe('the CPU loops against the graphs on the CPU provider', () => {
  const cases: [string, number][] = [
    ['FP8_DYNAMIC', 64],
    // Rows that are not whole 32-bit words of codes: one byte at a time.
    ['FP8_DYNAMIC', 66],
    ['FP8', 64],
    ['MXFP8', 64],
    ['W4A16', 128],
    ['W8A16', 128],
    ['W8A8', 64],
    ['W8A8', 66],
    ['MXFP4', 64],
    ['NVFP4A16', 64],
    ['W4A16_ASYM', 128],
    ['W4A16_ASYM', 256],
  ];
  for (const [scheme, cols] of cases) {
    test(`${scheme} (${cols} columns): the same bytes from raw bf16 weights`, async () => {
      const kernel = planWeightKernel(presetScheme(scheme, ['Linear'])!, [3, cols], 'BF16');
      expect(cpuKernelSupports(kernel)).toBe(true);
      const loops = new GraphRuntime('cpu');
      const graphs = new GraphRuntime('cpu', null, false, false, false);
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(weightBits, { minLength: 3 * cols, maxLength: 3 * cols }), fc.integer({ min: -130, max: 10 }), async (bits, shift) => {
            // Rows scaled down together sometimes, so that scales become subnormal.
            const raw = new Uint8Array(Uint16Array.from(bits, (b, i) => (i < cols && shift < -100 ? b & 0x807f : b)).buffer);
            const run = async (rt: GraphRuntime): Promise<Map<string, Uint8Array>> => {
              const grouped = groupedWeight(rt, kernel, raw);
              const stats = await observeWeight(rt, kernel, grouped);
              return quantizeWeight(rt, kernel, grouped, stats, kernel.kind === 'nvfp4' ? fusedGlobalScale([stats], kernel) : undefined);
            };
            const [a, b] = [await run(loops), await run(graphs)];
            for (const o of kernel.outputs) expect([...a.get(o.suffix)!], o.suffix).toEqual([...b.get(o.suffix)!]);
          }),
          { numRuns: 200 },
        );
      } finally {
        await loops.dispose();
        await graphs.dispose();
      }
    });
  }
});

describe('one graph observing and quantizing (the CUDA configuration on the CPU provider) against the CPU loops', () => {
  for (const [scheme, cols] of [
    ['FP8_DYNAMIC', 64],
    ['FP8', 64],
    ['W4A16', 128],
    ['W8A16', 128],
    ['W8A8', 64],
  ] as const) {
    test(`${scheme}: the same bytes, zero and subnormal rows included`, async () => {
      const kernel = planWeightKernel(presetScheme(scheme, ['Linear'])!, [3, cols], 'BF16');
      const loops = new GraphRuntime('cpu');
      const device = new GraphRuntime('cpu', null, true, true, false);
      expect(observesInGraph(device, kernel)).toBe(true);
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(weightBits, { minLength: 3 * cols, maxLength: 3 * cols }), fc.constantFrom('as is', 'tiny row', 'zero row'), async (bits, row) => {
            const raw = new Uint8Array(Uint16Array.from(bits, (b, i) => (i >= cols ? b : row === 'tiny row' ? b & 0x807f : row === 'zero row' ? b & 0x8000 : b)).buffer);
            const grouped = groupedWeight(loops, kernel, raw);
            const stats = await observeWeight(loops, kernel, grouped);
            const want = await quantizeWeight(loops, kernel, grouped, stats);
            const got = await quantizeObserved(device, kernel, groupedWeight(device, kernel, raw));
            for (const o of kernel.outputs) expect([...got.get(o.suffix)!], o.suffix).toEqual([...want.get(o.suffix)!]);
          }),
          { numRuns: 100 },
        );
      } finally {
        await loops.dispose();
        await device.dispose();
      }
    });
  }
});

describe('same-shaped weights stacked into one graph run', () => {
  for (const scheme of ['FP8_DYNAMIC', 'W4A16', 'W8A8'] as const) {
    test(`${scheme}: each weight's tensors are what it gets alone`, async () => {
      const kernel = planWeightKernel(presetScheme(scheme, ['Linear'])!, [2, 128], 'BF16');
      const rt = new GraphRuntime('cpu', null, true, true, false);
      expect(stackKey(rt, kernel)).not.toBeNull();
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(fc.array(weightBits, { minLength: 256, maxLength: 256 }), { minLength: 2, maxLength: 4 }), async (weights) => {
            const raws = weights.map((w) => new Uint8Array(Uint16Array.from(w).buffer));
            const together = await quantizeObservedStack(rt, kernel, raws);
            for (const [i, raw] of raws.entries()) {
              const alone = await quantizeObserved(rt, kernel, groupedWeight(rt, kernel, raw));
              for (const o of kernel.outputs) expect([...together[i]!.get(o.suffix)!], `${i} ${o.suffix}`).toEqual([...alone.get(o.suffix)!]);
            }
          }),
          { numRuns: 30 },
        );
      } finally {
        await rt.dispose();
      }
    });
  }

  test('tensor-wise scales, slices and the CPU loops do not stack', () => {
    const graphs = new GraphRuntime('cpu', null, true, true, false);
    expect(stackKey(graphs, planWeightKernel(presetScheme('FP8', ['Linear'])!, [2, 128], 'BF16'))).toBeNull();
    expect(stackKey(new GraphRuntime('cpu', 4096, true, true, false), planWeightKernel(presetScheme('W4A16', ['Linear'])!, [2, 128], 'BF16'))).toBeNull();
    expect(stackKey(new GraphRuntime('cpu'), planWeightKernel(presetScheme('W4A16', ['Linear'])!, [2, 128], 'BF16'))).toBeNull();
  });
});

describe('NVFP4 scales looked up by magnitude bits', () => {
  test('every finite bf16 magnitude gives nvfp4Qparams\' scale byte and divisor, for global scales from tiny to huge', () => {
    const absBits = Uint16Array.from({ length: 0x7f80 }, (_, h) => h);
    const amax = new Float32Array(Uint32Array.from(absBits, (h) => h << 16).buffer);
    for (const gs of [nvfp4GlobalScale(1, 'BF16'), nvfp4GlobalScale(3e-5, 'BF16'), nvfp4GlobalScale(2e4, 'BF16'), 1, 1e-30]) {
      // Reversed, so that the lookup cannot depend on the order of the groups.
      const order = absBits.slice().reverse();
      const { scaleBytes, divisor } = nvfp4ScalesOfAbsBits(order, gs, 'BF16');
      const scale = nvfp4Qparams(amax.map((v) => -v).reverse(), amax.slice().reverse(), gs, 'BF16');
      expect(Buffer.from(scaleBytes).equals(Buffer.from(fp8E4m3Bytes(scale))), `gs ${gs}`).toBe(true);
      expect([...divisor].every((d, g) => d === Math.fround(scale[g]! / gs)), `gs ${gs}`).toBe(true);
    }
  });
});

describe('FP8 128×128 blocks in the CPU loops', () => {
  test('the same codes and scales as the graphs, for unpadded bf16 weights with zero, subnormal and large blocks', async () => {
    const kernel = planWeightKernel(presetScheme('FP8_BLOCK', ['Linear'])!, [256, 384], 'BF16');
    expect(cpuKernelSupports(kernel)).toBe(true);
    // Padded blocks stay in the graphs.
    expect(cpuKernelSupports(planWeightKernel(presetScheme('FP8_BLOCK', ['Linear'])!, [200, 384], 'BF16'))).toBe(false);
    const loops = new GraphRuntime('cpu');
    const graphs = new GraphRuntime('cpu', null, false, false, false);
    try {
      for (const seed of [1, 2, 3, 4, 5]) {
        let x = seed;
        const next = (): number => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
        const bits = new Uint16Array(256 * 384);
        for (let i = 0; i < bits.length; i++) {
          const r = Math.floor(i / 384);
          const c = i % 384;
          // Block (0, 1) all zero, block (1, 2) subnormal, the rest ordinary with a few large values.
          bits[i] = r < 128 && c >= 128 && c < 256 ? 0 : r >= 128 && c >= 256 ? (next() >>> 16) & 0x807f : (next() >>> 16) & (next() % 97 === 0 ? 0xc7ff : 0xbfff);
        }
        const raw = new Uint8Array(bits.buffer);
        const run = async (rt: GraphRuntime): Promise<Map<string, Uint8Array>> => {
          const grouped = groupedWeight(rt, kernel, raw);
          return quantizeWeight(rt, kernel, grouped, await observeWeight(rt, kernel, grouped));
        };
        const [a, b] = [await run(loops), await run(graphs)];
        for (const o of kernel.outputs) expect(Buffer.from(a.get(o.suffix)!).equals(Buffer.from(b.get(o.suffix)!)), `seed ${seed} ${o.suffix}`).toBe(true);
      }
    } finally {
      await loops.dispose();
      await graphs.dispose();
    }
  });
});
