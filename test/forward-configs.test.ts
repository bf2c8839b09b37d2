import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { layerBuilderFor } from '../src/execute/forward/architectures.js';
import { readDecoderConfig } from '../src/execute/forward/decoder-config.js';
import { bundledConfig, bundledModelIds } from '../src/model/hub.js';

const TREES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'trees');

describe('the forward executor reads every bundled full-size config', () => {
  const expected: Record<string, { rope: string; dim: number }> = {
    'deepseek-ai/DeepSeek-V3': { rope: 'yarn', dim: 64 },
    'meta-llama/Llama-3.1-8B': { rope: 'llama3', dim: 128 },
    'mistralai/Mixtral-8x7B-v0.1': { rope: 'default', dim: 128 },
    'moonshotai/Kimi-K2-Instruct': { rope: 'yarn', dim: 64 },
    'Qwen/Qwen3-30B-A3B': { rope: 'default', dim: 128 },
    'zai-org/GLM-4.7-Flash': { rope: 'default', dim: 64 },
  };
  test('the known ones are bundled', () => expect(bundledModelIds()).toEqual(expect.arrayContaining(Object.keys(expected))));
  for (const id of bundledModelIds()) {
    test(id, () => {
      const raw = JSON.parse(bundledConfig(id)!.text) as Record<string, unknown>;
      expect(() => layerBuilderFor(raw)).not.toThrow();
      const cfg = readDecoderConfig(raw);
      if (expected[id]) expect({ rope: cfg.rope.type, dim: cfg.rope.dim }).toEqual(expected[id]);
    });
  }
});

describe('the forward executor reads the olmoe, granitemoe and phimoe config class defaults', () => {
  for (const type of ['olmoe', 'granitemoe', 'phimoe']) {
    test(type, async () => {
      const raw = JSON.parse(await readFile(join(TREES, type, 'default.config.json'), 'utf8')) as Record<string, unknown>;
      expect(() => layerBuilderFor(raw)).not.toThrow();
      const cfg = readDecoderConfig(raw);
      expect(cfg.modelType).toBe(type);
      if (type === 'phimoe') expect(cfg.layerNorm).toBe(true);
      if (type === 'granitemoe') expect([cfg.embeddingMultiplier, cfg.residualMultiplier, cfg.attentionScale, cfg.logitsScaling]).toEqual([1, 1, 1, 1]);
    });
  }
  test('longrope runs for phimoe only, and needs its short factors and mscales', () => {
    const rope = { rope_type: 'longrope', rope_theta: 10000, short_factor: [1, 1], long_factor: [2, 2], short_mscale: 1.1, long_mscale: 1.2, original_max_position_embeddings: 16 };
    const base = { hidden_size: 8, num_attention_heads: 2, num_hidden_layers: 1, vocab_size: 8, rope_parameters: rope };
    expect(readDecoderConfig({ ...base, model_type: 'phimoe' }).rope.longrope).toEqual({ shortFactor: [1, 1], shortMscale: 1.1, longMscale: 1.2 });
    expect(() => readDecoderConfig({ ...base, model_type: 'llama' })).toThrow(/longrope/);
    expect(() => readDecoderConfig({ ...base, model_type: 'phimoe', rope_parameters: { ...rope, short_factor: [1] } })).toThrow(/short_factor must be 2 numbers/);
  });
});
