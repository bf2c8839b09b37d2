/**
 * compressModules folds complete unpacked experts containers before
 * compressing; its patterns must equal compressNames on the full list, for
 * complete containers, partial ones and mixtures.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compressNames } from '../../src/match/compress-names.js';
import { compressModules } from '../../src/plan/compress-modules.js';
import { FIXTURES } from '../model/fixtures.js';
import { planText, yamlRecipe } from './harness.js';

describe('compressModules', () => {
  it('equals compressNames on GLM-4.7-Flash for random module subsets', async () => {
    const build = await planText('r.yaml', yamlRecipe(['Linear'], ['lm_head']), `${FIXTURES}oracle/zai-org__GLM-4.7-Flash/config.json`);
    const all = build.plan.quantize.map((q) => build.tree.names.indexOf(q.module));
    const plain = (ms: readonly number[]) => compressNames(ms.map((m) => build.tree.names[m]!)).map((g) => g.pattern);
    expect(compressModules(build.tree, all, build.moe)).toEqual(plain(all));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: all.length - 1 }), { maxLength: 40 }), fc.integer({ min: 1, max: 46 }), (drop, layers) => {
        // Keep the first `layers` MoE layers whole, then drop a few random modules.
        const dropped = new Set(drop.map((k) => all[k]!));
        const subset = all.filter((m) => !dropped.has(m) && !build.tree.names[m]!.startsWith(`model.layers.${layers + 1}.`));
        expect(compressModules(build.tree, subset, build.moe)).toEqual(plain(subset));
      }),
      { numRuns: 25 },
    );
  });
});
