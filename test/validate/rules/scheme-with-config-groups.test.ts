import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('scheme-with-config-groups', () => {
  it('reports scheme together with config_groups', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      scheme: FP8
      config_groups:
        g: {targets: [Linear], weights: {num_bits: 8}}`))).toEqual([
      '4:7 error scheme-with-config-groups "QuantizationModifier" sets both "scheme" and "config_groups"; specify either one.',
    ]);
  });
  it('accepts config_groups alone', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], weights: {num_bits: 8}}`))).toEqual([]);
  });
});
