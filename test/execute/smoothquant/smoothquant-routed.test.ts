/**
 * SmoothQuant's activation range is the smooth layer's own output (llm-compressor
 * hooks the norm), so calibrating experts on routed tokens only changes nothing
 * it measures: the norm feeding the experts puts out every token either way, and
 * the layer output is the routed combination in both modes.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { expect, test } from 'vitest';
import { cwdSourceHost } from '../../../src/cli/cwd-host.js';
import { ForwardModel } from '../../../src/execute/forward/executor.js';
import { jobFromPlan } from '../../../src/execute/from-plan.js';
import { smoothJob } from '../../../src/execute/smoothquant/smoothquant-job.js';
import { planRecipe } from '../../../src/plan/plan-recipe.js';
import { CALIBRATION, llamaWindows } from '../../calibrate-refs.js';
import { DATAFREE, unpackModel } from '../fixtures.js';

for (const model of ['phimoe', 'gpt_oss']) {
  test(`${model}: routed-only expert calibration smooths with the same scales as every expert`, async () => {
    const ref = JSON.parse(gunzipSync(await readFile(join(CALIBRATION, '..', 'smoothquant', model, 'SQ_W8A8_RTN.json.gz'))).toString('utf8')) as {
      recipe: readonly { modifier: string; kwargs: Record<string, unknown> }[];
    };
    const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-sq-routed-'));
    const modifiers = Object.fromEntries(ref.recipe.map((m) => [m.modifier, m.kwargs]));
    await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify({ default_stage: { default_modifiers: modifiers } }, null, 1)}\n`);
    const planned = await planRecipe(join(cwd, 'recipe.yaml'), modelDir, { source: cwdSourceHost('/') }, 'test');
    const job = jobFromPlan(planned.build!, { modelDir, outDir: join(cwd, 'unused'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers });
    const forward = await ForwardModel.open(modelDir);
    const calibration = (calibrateAllExperts: boolean) => ({ calibrateAllExperts, minExpertTokens: 0, onLowCoverage: 'warning' as const, kvCacheModules: [] });
    const all = await smoothJob({ ...job, calibration: calibration(true) }, forward, llamaWindows());
    const routed = await smoothJob({ ...job, calibration: calibration(false) }, forward, llamaWindows());
    // The experts do see different tokens in the two modes.
    expect(routed.coverage).not.toEqual(all.coverage);
    expect(routed.reports.some((r) => r.balance.some((b) => /\.experts\.\d+\./.test(b)))).toBe(true);
    expect(routed.reports.map((r) => [r.smooth, [...r.scales]])).toEqual(all.reports.map((r) => [r.smooth, [...r.scales]]));
  });
}
