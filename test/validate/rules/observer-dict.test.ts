import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('observer-dict', () => {
  it('reports an unknown observer key with a suggestion', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      scheme: FP8
      observer: {weight: mse}`))).toEqual([
      '5:18 error observer-dict Invalid observer key "weight"; valid keys are "weights", "input" and "output". Did you mean "weights"?',
    ]);
  });
  it('accepts the three valid keys', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      scheme: FP8
      observer: {weights: mse, input: static_minmax, output: minmax}`))).toEqual([]);
  });
});
