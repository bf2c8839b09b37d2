import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('learnable-unsupported', () => {
  it('reports learnable rotations', () => {
    expect(diagnose(recipe(`
    SpinQuantModifier: {learnable: true}
    QuIPModifier: {learnable: true}`))).toEqual([
      '3:36 error learnable-unsupported SpinQuantModifier: "learnable" is not supported by llm-compressor.',
      '4:31 error learnable-unsupported QuIPModifier: "learnable" is not supported by llm-compressor.',
    ]);
  });
  it('accepts fixed rotations', () => {
    expect(diagnose(recipe(`
    QuIPModifier: {learnable: false}`))).toEqual([]);
  });
});
