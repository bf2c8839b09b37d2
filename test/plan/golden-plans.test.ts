/**
 * Golden plans: every built-in recipe planned against its own model (the
 * recipe's `model` line, a bundled config), as text and as JSON. The JSON
 * golden stores `quantize[]` as brace patterns per scheme (an exact,
 * reversible compression) to keep 70k-module plans reviewable.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020Module from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { cwdSourceHost } from '../../src/cli/cwd-host.js';
import { compressNames } from '../../src/match/compress-names.js';
import { planRecipe } from '../../src/plan/plan-recipe.js';
import type { Plan } from '../../src/plan/types.js';
import { renderDiagnostics } from '../../src/report/diagnostics.js';
import { renderPlanMarkdown } from '../../src/report/plan-markdown.js';
import { renderPlanText } from '../../src/report/plan-text.js';
import planSchema from '../../schemas/plan.schema.json' with { type: 'json' };

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const recipes = readdirSync(`${ROOT}recipes`).filter((f) => f.endsWith('.qr')).sort();
const Ajv2020 = Ajv2020Module as unknown as { default: new (o: object) => { compile(s: object): ((x: unknown) => boolean) & { errors?: unknown } } };
const validatePlan = new Ajv2020.default({ allErrors: true, strict: false }).compile(planSchema);

/** The plan with quantize[] folded into brace patterns per scheme. */
function goldenJson(plan: Plan): unknown {
  const byScheme = new Map<string, string[]>();
  for (const q of plan.quantize) {
    const list = byScheme.get(q.scheme);
    if (list) list.push(q.module);
    else byScheme.set(q.scheme, [q.module]);
  }
  const quantize = Object.fromEntries([...byScheme].map(([k, names]) => [k, compressNames(names).map((g) => g.pattern)]));
  return { ...plan, quantc: '<version>', quantize };
}

describe.each(recipes)('%s', (file) => {
  it('plans against its model without errors, matching the golden text, Markdown and JSON', async () => {
    const planned = await planRecipe(`recipes/${file}`, undefined, { source: cwdSourceHost(ROOT) }, 'golden');
    expect(planned.build, JSON.stringify(planned.diagnostics)).not.toBeNull();
    const plan = planned.build!.plan;
    expect(plan.summary.errors).toBe(0);
    expect(validatePlan(plan), JSON.stringify(validatePlan.errors)).toBe(true);
    const stem = file.replace(/\.qr$/, '');
    await expect(renderPlanText(plan, renderDiagnostics(planned.diagnostics, planned.sources))).toMatchFileSnapshot(`../cases/plans/${stem}/plan.txt`);
    await expect(renderPlanMarkdown(plan)).toMatchFileSnapshot(`../cases/plans/${stem}/plan.md`);
    await expect(`${JSON.stringify(goldenJson(plan), null, 2)}\n`).toMatchFileSnapshot(`../cases/plans/${stem}/plan.json`);
  });

  it('plans the same from its YAML twin', async () => {
    const yaml = file.replace(/\.qr$/, '.yaml');
    const [a, b] = await Promise.all(
      [file, yaml].map((f) => planRecipe(`recipes/${f}`, undefined, { source: cwdSourceHost(ROOT) }, 'golden')),
    );
    const strip = (p: Plan) => ({ ...p, recipe: { ...p.recipe, path: '' }, steps: p.steps.map((s) => ({ ...s, reason: undefined })), diagnostics: p.diagnostics.map((d) => ({ ...d, span: undefined })) });
    expect(strip(b!.build!.plan)).toEqual(strip(a!.build!.plan));
  });
});
