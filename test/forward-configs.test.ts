import { describe, expect, test } from 'vitest';
import { layerBuilderFor } from '../src/execute/forward/architectures.js';
import { readDecoderConfig } from '../src/execute/forward/decoder-config.js';
import { bundledConfig, bundledModelIds } from '../src/model/hub.js';

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
