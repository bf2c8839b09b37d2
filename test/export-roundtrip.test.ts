import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildIr } from '../src/ir/build.js';
import { PRESET_NAMES } from '../src/ir/presets.js';
import { exportJson } from '../src/export/json.js';
import { exportYaml } from '../src/export/yaml.js';
import type { ModifierDocument, RecipeDocument } from '../src/parse/document.js';
import { parseJson } from '../src/parse/json.js';
import { parseYaml } from '../src/parse/yaml.js';
import { validateRecipe } from '../src/validate/index.js';

const name = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/).filter((s) => !s.includes('_stage') && !s.includes('_modifiers'));
const pattern = fc.oneof(
  fc.constantFrom('Linear', 'lm_head', 'Embedding', 're:.*mlp.gate$', "re:.*self_attn\\.(q|k|v)_proj$", 'yes', '2:4', '0755', 'null', '- x', 'a: b', '#x'),
  fc.stringMatching(/^[A-Za-z0-9_.:*$^ -]{1,12}$/),
);
const patterns = fc.array(pattern, { minLength: 1, maxLength: 3 });

const quantization: fc.Arbitrary<ModifierDocument> = fc.record({
  type: fc.constantFrom('QuantizationModifier', 'GPTQModifier'),
  args: fc.record({ scheme: fc.constantFrom(...PRESET_NAMES.filter((p) => p !== 'UNQUANTIZED')), targets: patterns, ignore: patterns }, { requiredKeys: ['scheme'] }),
});
const smooth: fc.Arbitrary<ModifierDocument> = fc.record({
  type: fc.constant('SmoothQuantModifier'),
  args: fc.record({ smoothing_strength: fc.double({ min: 0, max: 1, noNaN: true }) }, { requiredKeys: [] }),
});
const sparse: fc.Arbitrary<ModifierDocument> = fc.record({
  type: fc.constant('SparseGPTModifier'),
  args: fc.record({ sparsity: fc.double({ min: 0.05, max: 0.95, noNaN: true }), mask_structure: fc.constantFrom('0:0', '2:4', '4:8') }),
});
const configGroups: fc.Arbitrary<ModifierDocument> = fc.record({
  type: fc.constant('QuantizationModifier'),
  args: fc.record({
    config_groups: fc.dictionary(
      name,
      fc.record({
        targets: patterns,
        weights: fc.record({ num_bits: fc.constantFrom(4, 8), symmetric: fc.boolean(), group_size: fc.constantFrom(32, 128), strategy: fc.constant('group') }),
      }),
      { minKeys: 1, maxKeys: 2 },
    ),
  }),
});

/** Recipes as a YAML mapping can hold them: one modifier name per group, one key per stage. */
const document: fc.Arbitrary<RecipeDocument> = fc
  .uniqueArray(
    fc.record({ name, modifiers: fc.uniqueArray(fc.oneof(quantization, smooth, sparse, configGroups), { minLength: 1, maxLength: 3, selector: (m) => m.type }) }),
    { minLength: 1, maxLength: 3, selector: (s) => s.name },
  )
  .map((stages) => ({ stages: stages.map((s) => ({ name: s.name, groups: [{ name: s.name, modifiers: s.modifiers }] })) }));

describe('export to YAML, property-based', () => {
  it('re-reads every generated recipe into the same IR', () => {
    fc.assert(
      fc.property(document, (doc) => {
        expect(validateRecipe(doc, new Map()).filter((d) => d.severity === 'error')).toEqual([]);
        const ir = buildIr(doc, new Map());
        const yaml = exportYaml(ir, doc).value;
        const parsed = parseYaml({ path: 'x.yaml', text: yaml });
        expect(parsed.diagnostics).toEqual([]);
        const again = parsed.value!;
        expect(validateRecipe(again.document, again.spans)).toEqual([]);
        const strip = (text: string) => JSON.stringify(JSON.parse(text), (k, v) => (k === 'origin' ? undefined : v));
        expect(strip(exportJson(buildIr(again.document, again.spans), new Map()))).toEqual(strip(exportJson(ir, new Map())));
      }),
      { numRuns: 150 },
    );
  });
});

describe('export to JSON', () => {
  it('reads every built-in recipe and a declared MoE rewrite back into the same IR', async () => {
    const { readdirSync } = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    const { compileRecipe } = await import('../src/compile.js');
    const { cwdSourceHost } = await import('../src/cli/cwd-host.js');
    const root = fileURLToPath(new URL('../', import.meta.url));
    const host = cwdSourceHost(root);
    const files = [...readdirSync(`${root}recipes`).filter((f) => f.endsWith('.qr')).map((f) => `recipes/${f}`), 'test/cases/plan-moe/declared.qr'];
    const strip = (text: string) => JSON.stringify(JSON.parse(text), (k, v) => (k === 'origin' ? undefined : v));
    for (const file of files) {
      const first = await compileRecipe(file, host);
      const json = exportJson(first.ir!, first.sources);
      const parsed = parseJson({ path: 'x.json', text: json });
      expect(parsed.diagnostics, file).toEqual([]);
      const again = buildIr(parsed.value!.document, parsed.value!.spans);
      expect(strip(exportJson(again, new Map())), file).toEqual(strip(json));
    }
  });
});

describe('export to JSON, property-based', () => {
  it('reads the exported IR back into the same IR', () => {
    fc.assert(
      fc.property(document, (doc) => {
        const ir = buildIr(doc, new Map());
        const json = exportJson(ir, new Map());
        const parsed = parseJson({ path: 'x.json', text: json });
        expect(parsed.diagnostics).toEqual([]);
        const again = parsed.value!;
        expect(validateRecipe(again.document, again.spans)).toEqual([]);
        const strip = (text: string) => JSON.stringify(JSON.parse(text), (k, v) => (k === 'origin' ? undefined : v));
        expect(strip(exportJson(buildIr(again.document, again.spans), new Map()))).toEqual(strip(json));
      }),
      { numRuns: 150 },
    );
  });
});
