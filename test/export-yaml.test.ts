import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileRecipe } from '../src/compile.js';
import { exportYaml } from '../src/export/yaml.js';
import { irToJson } from '../src/export/json.js';
import { parseYaml } from '../src/parse/yaml.js';
import { memorySourceHost, nodeSourceHost } from '../src/source-host.js';
import type { RecipeIR } from '../src/ir/types.js';
import { buildIr } from '../src/ir/build.js';
import type { RecipeDocument } from '../src/parse/document.js';

interface Serialized {
  readonly input: string;
  readonly serialized: string;
  readonly modifiers: readonly string[];
}

const fixtures = JSON.parse(readFileSync(new URL('./fixtures/llm-compressor/serialized-recipes.json', import.meta.url), 'utf8')) as Record<string, Serialized>;

/** The IR without source positions, for comparing recipes read from different files. */
function withoutSpans(ir: RecipeIR): unknown {
  return irToJson(ir, new Map());
}

async function compileText(path: string, text: string) {
  const result = await compileRecipe(path, memorySourceHost({ [path]: text }));
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return result;
}

/** Exports to YAML, re-reads, and checks the IR is unchanged. */
async function roundTrip(path: string, text: string) {
  const first = await compileText(path, text);
  const exported = exportYaml(first.ir!, first.document!).value;
  const second = await compileText('exported.yaml', exported);
  expect(second.diagnostics).toEqual([]);
  const strip = (ir: RecipeIR) => JSON.parse(JSON.stringify(withoutSpans(ir)).replaceAll(`"${path}`, '"X').replaceAll('"exported.yaml', '"X'));
  expect(strip(second.ir!)).toEqual(strip(first.ir!));
  return { first, exported };
}

describe('export to llm-compressor YAML', () => {
  for (const [name, fx] of Object.entries(fixtures)) {
    it(`${name}: materializes arguments exactly as Recipe.yaml() does, in the same key order`, async () => {
      const first = await compileText(`${name}.yaml`, fx.input);
      expect(first.ir!.modifiers.map((m) => m.type)).toEqual(fx.modifiers);
      const serialized = parseYaml({ path: 'serialized.yaml', text: fx.serialized }).value!.document;
      const written = serialized.stages.flatMap((s) => s.groups.flatMap((g) => g.modifiers));
      for (const [i, m] of first.ir!.modifiers.entries()) {
        expect(JSON.stringify(m.args)).toEqual(JSON.stringify(written[i]!.args));
      }
    });
    it(`${name}: export re-reads to the same IR`, async () => {
      await roundTrip(`${name}.yaml`, fx.input);
    });
  }

  it('keeps stages, groups and the quantc settings, and never writes Python tags', async () => {
    const { exported } = await roundTrip('x.yaml', readFileSync(new URL('./cases/yaml/quantc-extension/recipe.yaml', import.meta.url), 'utf8'));
    expect(exported).toMatch(/^quantc:\n/);
    expect(exported).toContain('quant_stage:\n  quant_modifiers:\n');
    const awq = await compileText('awq.yaml', fixtures['awq-w4a16-asym']!.serialized);
    expect(exportYaml(awq.ir!, awq.document!).value).not.toContain('!!python');
  });

  it('quotes strings that YAML 1.1 would read as numbers or booleans', async () => {
    const { exported } = await roundTrip('x.yaml', fixtures['two-stages']!.input);
    expect(exported).toContain("mask_structure: '2:4'");
  });

  it('renames a repeated modifier or stage instead of collapsing it, keeping the order', async () => {
    const document: RecipeDocument = {
      stages: [
        { name: 'a', groups: [{ name: 'a', modifiers: [
          { type: 'QuantizationModifier', args: { scheme: 'W4A16', targets: ['re:.*mlp.*'] } },
          { type: 'GPTQModifier', args: {} },
          { type: 'QuantizationModifier', args: { scheme: 'FP8', targets: ['re:.*attn.*'] } },
        ] }] },
        { name: 'b', groups: [{ name: 'b', modifiers: [{ type: 'SmoothQuantModifier', args: {} }] }] },
        { name: 'a', groups: [{ name: 'a', modifiers: [{ type: 'GPTQModifier', args: { scheme: 'W8A8' } }] }] },
      ],
    };
    const out = exportYaml(buildIr(document, new Map()), document);
    expect(out.diagnostics.map((d) => d.message)).toEqual([
      'The modifier group "a" is written as "a_2" so that "QuantizationModifier" keeps its place in llm-compressor YAML.',
      'The stage "a" is written as "a_2" so that "GPTQModifier" keeps its place in llm-compressor YAML.',
    ]);
    const second = await compileText('exported.yaml', out.value);
    expect(second.ir!.modifiers.map((m) => [m.stage, m.group, m.type, m.args.scheme])).toEqual([
      ['a', 'a', 'QuantizationModifier', 'W4A16'],
      ['a', 'a', 'GPTQModifier', undefined],
      ['a', 'a_2', 'QuantizationModifier', 'FP8'],
      ['b', 'b', 'SmoothQuantModifier', undefined],
      ['a_2', 'a', 'GPTQModifier', 'W8A8'],
    ]);
  });

  const cases = new URL('./cases/yaml/', import.meta.url);
  for (const name of readdirSync(cases).sort()) {
    const file = readdirSync(new URL(`${name}/`, cases)).find((f) => !f.startsWith('expected'))!;
    it(`golden case ${name}: export re-reads to the same IR when it compiles`, async () => {
      const path = `test/cases/yaml/${name}/${file}`;
      const result = await compileRecipe(path, nodeSourceHost);
      if (!result.ir) return;
      await roundTrip(path, readFileSync(path, 'utf8'));
    });
  }
});
