import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileRecipe } from '../src/compile.js';
import { exportYaml } from '../src/export/yaml.js';
import { formatDsl, printDsl } from '../src/format/print-dsl.js';
import { buildIr } from '../src/ir/build.js';
import type { RecipeDocument } from '../src/parse/document.js';
import { parseDsl } from '../src/parse/dsl.js';
import { parseYaml } from '../src/parse/yaml.js';
import { compactDiagnostic } from '../src/report/diagnostics.js';
import { memorySourceHost, nodeSourceHost } from '../src/source-host.js';
import { validateRecipe } from '../src/validate/index.js';

const ROOT = 'test/cases/moe-coverage';

/** The IR without source positions, for comparing what two files mean. */
function meaning(ir: unknown): unknown {
  return JSON.parse(JSON.stringify(ir, (k, v) => (k === 'origin' ? undefined : v)));
}

describe('moe coverage settings (golden cases)', () => {
  for (const name of readdirSync(ROOT).sort()) {
    it(name, async () => {
      const inputs = readdirSync(join(ROOT, name)).filter((f) => !f.startsWith('expected')).sort();
      const out: string[] = [];
      for (const input of inputs) {
        const result = await compileRecipe(join(ROOT, name, input), nodeSourceHost);
        out.push(`# ${input}`, ...result.diagnostics.map((d) => compactDiagnostic(d, result.sources)));
        if (result.ir) out.push(`moe: ${JSON.stringify(meaning(result.ir.moe))}`);
      }
      await expect(`${out.join('\n')}\n`).toMatchFileSnapshot(join(import.meta.dirname, '..', ROOT, name, 'expected.txt'));
    });
  }

  it('a .qr recipe and its YAML twin build the same IR', async () => {
    const qr = await compileRecipe(join(ROOT, 'pair', 'recipe.qr'), nodeSourceHost);
    const yaml = await compileRecipe(join(ROOT, 'pair', 'recipe.yaml'), nodeSourceHost);
    expect(qr.diagnostics).toEqual([]);
    expect(yaml.diagnostics).toEqual([]);
    expect(qr.ir!.moe).toMatchObject({ calibrateAllExperts: false, minExpertTokens: 64, onLowCoverage: 'fallback' });
    expect(meaning(qr.ir)).toEqual(meaning(yaml.ir));
  });

  it('leaves an omitted setting at its default: 1 token, error', async () => {
    const r = await compileRecipe(join(ROOT, 'defaults', 'recipe.qr'), nodeSourceHost);
    expect(r.ir!.moe).toMatchObject({ minExpertTokens: 1, onLowCoverage: 'error' });
  });

  it('quantc fmt keeps the settings and changes nothing in canonical text', () => {
    const text = readFileSync(join(ROOT, 'pair', 'recipe.qr'), 'utf8');
    expect(formatDsl({ path: 'recipe.qr', text }).value).toBe(text);
    const squeezed = 'moe { min_expert_tokens=64,on_low_coverage=warning }\nstage quant { QuantizationModifier { scheme = NVFP4 } }\n';
    const formatted = formatDsl({ path: 'x.qr', text: squeezed }).value!;
    expect(formatted).toContain('moe {\n  min_expert_tokens = 64\n  on_low_coverage = warning\n}');
  });

  const settings = fc.record(
    {
      calibrate_all_experts: fc.boolean(),
      on_unsupported: fc.constantFrom('error' as const, 'warning' as const),
      min_expert_tokens: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      on_low_coverage: fc.constantFrom('error' as const, 'warning' as const, 'fallback' as const),
    },
    { requiredKeys: [] },
  );
  const recipeWith = (moe: RecipeDocument['moe']): RecipeDocument => ({
    moe,
    stages: [{ name: 'quant', groups: [{ name: 'quant', modifiers: [{ type: 'QuantizationModifier', args: { targets: ['Linear'], scheme: 'NVFP4' } }] }] }],
  });

  it('property: the settings survive export to YAML and to DSL', () => {
    fc.assert(
      fc.property(settings, (moe) => {
        const doc = recipeWith(moe);
        expect(validateRecipe(doc, new Map())).toEqual([]);
        const ir = buildIr(doc, new Map());
        const yaml = parseYaml({ path: 'x.yaml', text: exportYaml(ir, doc).value });
        expect(yaml.diagnostics).toEqual([]);
        expect(meaning(buildIr(yaml.value!.document, yaml.value!.spans))).toEqual(meaning(ir));
        const qr = parseDsl({ path: 'x.qr', text: printDsl(doc) }, memorySourceHost({}));
        expect(qr.diagnostics).toEqual([]);
        expect(meaning(buildIr(qr.value.document, qr.value.spans))).toEqual(meaning(ir));
      }),
      { numRuns: 100 },
    );
  });
});
