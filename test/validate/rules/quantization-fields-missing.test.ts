import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('quantization-fields-missing', () => {
  it('reports a QuantizationModifier with nothing to quantize', () => {
    expect(diagnose(recipe(`
    QuantizationModifier: {targets: Linear}`))).toEqual([
      '3:5 error quantization-fields-missing QuantizationModifier requires that quantization fields be specified: set "scheme", "config_groups" or "kv_cache_scheme".',
    ]);
  });
  it('accepts a GPTQModifier that reuses earlier schemes', () => {
    expect(diagnose(recipe(`
    QuantizationModifier: {scheme: W4A16}
    GPTQModifier: {}`))).toEqual([]);
  });
});
