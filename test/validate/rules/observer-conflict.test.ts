import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('observer-conflict', () => {
  it('reports individual observers together with the observer mapping', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      scheme: FP8
      weight_observer: mse
      observer: {input: minmax}`))).toEqual([
      '6:7 error observer-conflict Cannot specify both individual observer parameters (weight_observer) and the "observer" mapping.',
    ]);
  });
  it('accepts individual observers alone', () => {
    expect(diagnose(recipe(`
    QuantizationModifier: {scheme: FP8, weight_observer: mse}`))).toEqual([]);
  });
});
