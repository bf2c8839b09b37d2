import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('actorder-group-deprecated', () => {
  it('warns about actorder group and its alias dynamic', () => {
    expect(diagnose(recipe(`
    GPTQModifier: {scheme: W4A16, actorder: dynamic}`))).toEqual([
      '3:45 warning actorder-group-deprecated GPTQModifier actorder "dynamic" (group) is deprecated; use the default "static" instead.',
    ]);
  });
  it('says nothing about the default', () => {
    expect(diagnose(recipe(`
    GPTQModifier: {scheme: W4A16}`))).toEqual([]);
  });
});
