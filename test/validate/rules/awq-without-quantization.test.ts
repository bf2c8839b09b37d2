import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('awq-without-quantization', () => {
  it('reports AWQ with no later quantization modifier', () => {
    expect(diagnose(recipe(`
    QuantizationModifier: {scheme: W4A16_ASYM}
    AWQModifier: {duo_scaling: both}`), 'awq-without-quantization')).toEqual([
      '4:5 error awq-without-quantization Recipe includes AWQModifier with no subsequent quantization modifier: [QuantizationModifier, AWQModifier]. AWQ must be run with a subsequent quantization modifier.',
    ]);
  });
  it('accepts AWQ followed by a quantization modifier in a later stage', () => {
    expect(diagnose(`a_stage:\n  a_modifiers:\n    AWQModifier: {}\nb_stage:\n  b_modifiers:\n    GPTQModifier: {scheme: W4A16}\n`)).toEqual([]);
  });
});
