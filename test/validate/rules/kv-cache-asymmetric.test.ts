import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('kv-cache-asymmetric', () => {
  it('warns about an asymmetric KV cache', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      scheme: FP8
      kv_cache_scheme: {num_bits: 8, type: float, strategy: tensor, symmetric: false}`))).toEqual([
      '5:80 warning kv-cache-asymmetric vLLM does not support asymmetric KV-cache quantization.',
    ]);
  });
  it('accepts a symmetric KV cache', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      kv_cache_scheme: {num_bits: 8, type: float, strategy: tensor}`))).toEqual([]);
  });
});
