import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('token-needs-dynamic', () => {
  it('reports static token activations', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], input_activations: {strategy: token}}`))).toEqual([
      '5:62 error token-needs-dynamic Cannot perform static token quantization in "input_activations"; set "dynamic: true".',
    ]);
  });
  it('accepts dynamic token activations', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], input_activations: {strategy: token, dynamic: true}}`))).toEqual([]);
  });
});
