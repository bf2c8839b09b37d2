/**
 * Acceptance against ground truth: planning each oracle model from its
 * config.json alone, the plan's quantize[] equals what compressed-tensors
 * matched after llm-compressor linearized the experts, and moe.rewrites[]
 * covers exactly the experts modules llm-compressor linearized.
 */
import { describe, expect, it } from 'vitest';
import { FIXTURES, readJson } from '../model/fixtures.js';
import { oracleModels } from '../match/oracle.js';
import { planText, yamlRecipe } from './harness.js';

describe.each(oracleModels())('$id', (model) => {
  const config = `${FIXTURES}oracle/${model.id}/config.json`;
  const linearized = readJson(`${FIXTURES}oracle/${model.id}/linearized.json.gz`) as { replaced: [string, string, string][] };

  for (const [id, recipe] of Object.entries(model.recipes)) {
    it(`${id}: quantize[] equals compressed-tensors after linearization`, async () => {
      const build = await planText('recipe.yaml', yamlRecipe(recipe.targets, recipe.ignore), config);
      const expected = recipe.after_head.quantized.map((i) => model.afterHead.names[i]);
      expect(build.plan.quantize.map((q) => q.module)).toEqual(expected);
      expect(build.tree.names).toEqual(model.afterHead.names);
    });
  }

  it('moe.rewrites[] covers exactly the experts llm-compressor linearized', async () => {
    const build = await planText('recipe.yaml', yamlRecipe(['Linear'], ['lm_head']), config);
    const rewritten = build.plan.moe.rewrites.filter((r) => r.rewrite === 'unpack-fused-experts').map((r) => [r.expertsModule, r.class]);
    expect(rewritten.map(([m]) => m)).toEqual(linearized.replaced.map(([m]) => m));
  });
});

describe('GLM-4.7-Flash NVFP4', () => {
  it('reports 46 Glm4MoeLiteMoE rewrites with 64 experts each and the Linear count that follows', async () => {
    const build = await planText('recipe.yaml', yamlRecipe(['Linear'], ['lm_head', 're:.*mlp.gate$'], 'NVFP4'), `${FIXTURES}oracle/zai-org__GLM-4.7-Flash/config.json`);
    const rewrites = build.plan.moe.rewrites;
    expect(rewrites).toHaveLength(46);
    expect(new Set(rewrites.map((r) => r.class))).toEqual(new Set(['Glm4MoeLiteMoE']));
    expect(rewrites.every((r) => r.experts === 64)).toBe(true);
    const linear = (names: readonly string[], tree: typeof build.tree) =>
      names.filter((_, i) => tree.classes[tree.classIds[i]!]!.mro.includes('Linear')).length;
    expect(linear(build.original.names, build.original)).toBe(377);
    expect(linear(build.tree.names, build.tree)).toBe(9209);
    expect(build.plan.summary.quantized).toBe(9208);
    expect(build.plan.ignored).toEqual([{ module: 'lm_head', pattern: 'lm_head' }]);
  });
});
