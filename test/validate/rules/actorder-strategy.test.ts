import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('actorder-strategy', () => {
  it('reports actorder group with the channel strategy', () => {
    expect(diagnose(recipe(`
    GPTQModifier:
      actorder: group
      config_groups:
        g: {targets: [Linear], weights: {strategy: channel, actorder: group}}`), 'actorder-strategy')).toEqual([
      '6:71 error actorder-strategy actorder "group" requires strategy "group" or "tensor_group", not "channel".',
    ]);
  });
  it('accepts actorder weight with the channel strategy', () => {
    expect(diagnose(recipe(`
    GPTQModifier:
      config_groups:
        g: {targets: [Linear], weights: {strategy: channel, actorder: weight}}`), 'actorder-strategy')).toEqual([]);
  });
});
