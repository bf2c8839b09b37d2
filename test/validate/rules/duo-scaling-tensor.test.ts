import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('duo-scaling-tensor', () => {
  it('reports duo scaling before per-tensor weights', () => {
    expect(diagnose(recipe(`
    AWQModifier: {}
    QuantizationModifier: {scheme: FP8}`))).toEqual([
      '3:5 error duo-scaling-tensor AWQ duo_scaling is only supported with group or channel weight strategies, but "group_0" of QuantizationModifier uses "tensor"; set "duo_scaling: false".',
    ]);
  });
  it('accepts duo_scaling false, and group weights', () => {
    expect(diagnose(recipe(`
    AWQModifier: {duo_scaling: false}
    QuantizationModifier: {scheme: FP8}`))).toEqual([]);
    expect(diagnose(recipe(`
    AWQModifier: {duo_scaling: both}
    QuantizationModifier: {scheme: W4A16}`))).toEqual([]);
  });
});
