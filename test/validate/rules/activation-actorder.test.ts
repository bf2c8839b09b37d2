import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('activation-actorder', () => {
  it('reports actorder on input activations', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], input_activations: {strategy: tensor, actorder: weight}}`))).toEqual([
      '5:70 error activation-actorder Cannot apply actorder to input activations.',
    ]);
  });
  it('accepts actorder: false on activations', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], input_activations: {strategy: tensor, actorder: false}}`))).toEqual([]);
  });
});
