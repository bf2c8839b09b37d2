import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('deprecated-modifier', () => {
  it('warns about LogarithmicEqualizationModifier', () => {
    expect(diagnose(recipe(`
    LogarithmicEqualizationModifier: {}
    GPTQModifier: {scheme: W8A8}`))).toEqual([
      '3:5 warning deprecated-modifier "LogarithmicEqualizationModifier" is deprecated; use "SmoothQuantModifier" with "algorithm: log_equalization".',
    ]);
  });
  it('says nothing about SmoothQuantModifier', () => {
    expect(diagnose(recipe(`
    SmoothQuantModifier: {algorithm: log_equalization}`))).toEqual([]);
  });
});
