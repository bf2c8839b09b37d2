import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('group-size-mismatch', () => {
  it('warns when grouped weights and inputs differ in group size', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g:
          targets: [Linear]
          weights: {num_bits: 8, type: float, group_size: 128}
          input_activations: {num_bits: 8, type: float, group_size: 64, dynamic: true}`))).toEqual([
      '8:69 warning group-size-mismatch Config group "g" quantizes weights in groups of 128 but input activations in groups of 64; compressed-tensors warns that kernels may not support this.',
    ]);
  });
  it('accepts equal group sizes', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g:
          targets: [Linear]
          weights: {num_bits: 8, type: float, group_size: 128}
          input_activations: {num_bits: 8, type: float, group_size: 128, dynamic: true}`))).toEqual([]);
  });
});
