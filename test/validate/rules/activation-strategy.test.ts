import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('activation-strategy', () => {
  it('reports channel activations', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], input_activations: {strategy: channel}}`))).toEqual([
      '5:62 error activation-strategy Using channel strategy is not supported for activation quantization ("input_activations").',
    ]);
  });
  it('accepts per-tensor static activations', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], output_activations: {strategy: tensor}}`))).toEqual([]);
  });
});
