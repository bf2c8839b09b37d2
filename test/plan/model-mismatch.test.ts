import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { cwdSourceHost } from '../../src/cli/cwd-host.js';
import { planRecipe } from '../../src/plan/plan-recipe.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RECIPE = 'recipes/glm-4.7-flash-nvfp4.qr';

async function codes(model: string | undefined): Promise<string[]> {
  const planned = await planRecipe(RECIPE, model, { source: cwdSourceHost(ROOT) }, 'test');
  expect(planned.build).not.toBeNull();
  return planned.diagnostics.filter((d) => d.code === 'plan-model-mismatch').map((d) => `${d.code} ${d.span?.start}-${d.span?.end}`);
}

describe('plan-model-mismatch', () => {
  it('warns, at the model line, when --model is another architecture than the recipe names', async () => {
    const [w] = await codes('meta-llama/Llama-3.1-8B');
    const header = 'model "zai-org/GLM-4.7-Flash"';
    const text = (await import('node:fs')).readFileSync(`${ROOT}${RECIPE}`, 'utf8');
    const start = text.indexOf(header) + 'model '.length;
    expect(w).toBe(`plan-model-mismatch ${start}-${start + '"zai-org/GLM-4.7-Flash"'.length}`);
  });

  it('is quiet for the named model, another copy of its architecture, or no --model', async () => {
    expect(await codes('zai-org/GLM-4.7-Flash')).toEqual([]);
    expect(await codes('test/fixtures/datafree/glm4_moe_lite/base')).toEqual([]);
    expect(await codes(undefined)).toEqual([]);
  });
});
