import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('group-size-strategy', () => {
  it('reports a group strategy without group_size', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], weights: {num_bits: 4, strategy: group}}`))).toEqual([
      '5:65 error group-size-strategy Strategy "group" in "weights" requires group_size to be set to a positive value.',
    ]);
  });
  it('reports group_size with the channel strategy and group_size below -1', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], weights: {strategy: channel, group_size: 64}}
        h: {targets: [Linear], weights: {group_size: -2}}`))).toEqual([
      '5:61 error group-size-strategy "group_size" in "weights" requires strategy "group" or "tensor_group", not "channel".',
      '6:54 error group-size-strategy Invalid group size -2 in "weights"; use a positive size, or -1 for channel.',
    ]);
  });
  it('reports group_size 0 when the strategy must be inferred from it', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], weights: {num_bits: 4, group_size: 0}}`))).toEqual([
      '5:67 error group-size-strategy Invalid group size 0 in "weights"; use a positive size, or -1 for channel.',
    ]);
  });
  it('infers group from a positive group_size', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], weights: {num_bits: 4, group_size: 128}}`))).toEqual([]);
  });
});
