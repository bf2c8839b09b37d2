import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readDecoderConfig, readRope, UnsupportedModelError } from '../src/execute/forward/decoder-config.js';
import { attentionScaling, inverseFrequencies, ropeTables } from '../src/execute/forward/rope.js';
import { CALIBRATION } from './calibrate-refs.js';

const refs = JSON.parse(await readFile(join(CALIBRATION, 'rope.json'), 'utf8')) as Record<string, { config: Record<string, unknown>; inv_freq: number[]; attention_scaling: number }>;

describe("RoPE inverse frequencies equal transformers' initializers", () => {
  for (const [name, ref] of Object.entries(refs)) {
    test(name, () => {
      const rope = readDecoderConfig(ref.config).rope;
      expect(rope.type).toBe(name.replace(/_.*/, ''));
      expect(attentionScaling(rope)).toBeCloseTo(ref.attention_scaling, 6);
      const inv = inverseFrequencies(rope);
      expect(inv).toHaveLength(ref.inv_freq.length);
      ref.inv_freq.forEach((f, i) => expect(Math.abs(inv[i]! - f) / f, `inv_freq[${i}]`).toBeLessThan(1e-6));
    });
  }

  test('legacy rope_theta / rope_scaling keys and partial rotary factors', () => {
    expect(readRope({ rope_theta: 1e6, max_position_embeddings: 4096 }, 128)).toMatchObject({ type: 'default', theta: 1e6, dim: 128 });
    expect(readRope({ rope_theta: 5e5, rope_scaling: { rope_type: 'linear', factor: 2 } }, 64)).toMatchObject({ type: 'linear', theta: 5e5, factor: 2 });
    expect(readRope({ rope_parameters: { rope_theta: 1e4, rope_type: 'default', partial_rotary_factor: 0.5 } }, 64).dim).toBe(32);
    expect(() => readRope({ rope_parameters: { rope_type: 'longrope', factor: 4 } }, 64)).toThrow(UnsupportedModelError);
  });

  test('cos/sin tables repeat the frequencies over both halves', () => {
    const t = ropeTables(readRope({ rope_theta: 10000 }, 8), 3);
    expect(t.dim).toBe(8);
    expect(Array.from(t.cos.subarray(0, 8))).toEqual(new Array(8).fill(1));
    expect(t.sin[2 * 8 + 1]).toBeCloseTo(Math.sin(2 * 10000 ** -0.25), 6);
    expect(t.sin[2 * 8 + 5]).toBe(t.sin[2 * 8 + 1]);
  });
});
