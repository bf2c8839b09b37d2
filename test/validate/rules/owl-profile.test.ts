import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('owl-profile', () => {
  it('reports an OWL profile without owl_lmbda', () => {
    expect(diagnose(recipe(`
    SparseGPTModifier: {sparsity: 0.5, sparsity_profile: owl, owl_m: 5}`))).toEqual([
      '3:40 error owl-profile Provide all of "sparsity_profile: owl", "owl_m" and "owl_lmbda", or none; missing "owl_lmbda".',
    ]);
  });
  it('accepts all three', () => {
    expect(diagnose(recipe(`
    WandaPruningModifier: {sparsity: 0.5, sparsity_profile: owl, owl_m: 5, owl_lmbda: 0.08}`))).toEqual([]);
  });
});
