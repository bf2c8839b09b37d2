import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('block-structure', () => {
  it('reports the block strategy without block_structure and the reverse', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], weights: {strategy: block}}
        h: {targets: [Linear], weights: {strategy: channel, block_structure: 128x128}}`))).toEqual([
      '5:52 error block-structure Block strategy in "weights" requires "block_structure", e.g. [128, 128].',
      '6:61 error block-structure "block_structure" in "weights" requires strategy "block".',
    ]);
  });
  it('accepts block with a structure', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      config_groups:
        g: {targets: [Linear], weights: {type: float, strategy: block, block_structure: [128, 128]}}`))).toEqual([]);
  });
});
