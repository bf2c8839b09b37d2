import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('reap-sparsity-range', () => {
  it('reports sparsity 1', () => {
    expect(diagnose(recipe(`
    REAPPruningModifier: {sparsity: 1}`))).toEqual([
      '3:37 error reap-sparsity-range REAPPruningModifier sparsity must be in (0, 1), got 1.',
    ]);
  });
  it('accepts 0.25', () => {
    expect(diagnose(recipe(`
    REAPPruningModifier: {sparsity: 0.25}`))).toEqual([]);
  });
});
