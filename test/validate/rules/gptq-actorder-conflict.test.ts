import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('gptq-actorder-conflict', () => {
  it('reports GPTQ actorder differing from the scheme', () => {
    expect(diagnose(recipe(`
    GPTQModifier:
      actorder: weight
      config_groups:
        g: {targets: [Linear], weights: {num_bits: 4, group_size: 128, actorder: group}}`))).toEqual([
      `4:17 error gptq-actorder-conflict Cannot resolve activation ordering: GPTQModifier.actorder is "weight" but the scheme's weights set "group".`,
    ]);
  });
  it('accepts equal values, including aliases', () => {
    expect(diagnose(recipe(`
    GPTQModifier:
      actorder: static
      config_groups:
        g: {targets: [Linear], weights: {num_bits: 4, group_size: 128, actorder: weight}}`))).toEqual([]);
  });
});
