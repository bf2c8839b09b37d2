import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('dynamic-strategy', () => {
  it('reports dynamic channel activations and dynamic local without tensor_group', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], weights: {strategy: channel, dynamic: true}}
        h: {targets: [Linear], input_activations: {strategy: token, dynamic: local}}`))).toEqual([
      '5:70 error dynamic-strategy One of (token, tensor, tensor_group, group) must be used for dynamic quantization in "weights", not "channel".',
      '6:78 error dynamic-strategy "dynamic: local" in "input_activations" is only supported for strategy "tensor_group", not "token".',
    ]);
  });
  it('accepts NVFP4-style local activations', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], input_activations: {num_bits: 4, type: float, strategy: tensor_group, group_size: 16, dynamic: local}}`))).toEqual([]);
  });
});
