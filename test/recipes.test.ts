/**
 * The built-in recipes: each `.qr` compiles cleanly, is in canonical form,
 * and produces the same IR as its llm-compressor YAML twin; the YAML
 * exported from either re-reads to the same IR.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cwdSourceHost } from '../src/cli/cwd-host.js';
import { compileRecipe } from '../src/compile.js';
import { irToJson } from '../src/export/json.js';
import { exportYaml } from '../src/export/yaml.js';
import { formatDsl } from '../src/format/print-dsl.js';
import { memorySourceHost } from '../src/source-host.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const host = cwdSourceHost(ROOT);
const twins = readdirSync(`${ROOT}recipes`).filter((f) => f.endsWith('.qr')).map((f) => f.slice(0, -3)).sort();

/** IR JSON without source positions, which differ between the twins by design. */
function meaning(ir: unknown): unknown {
  return JSON.parse(JSON.stringify(ir), (key, value: unknown) => (key === 'origin' ? undefined : value));
}

describe.each(twins)('recipes/%s', (name) => {
  it('.qr and .yaml compile without errors or warnings to the same IR', async () => {
    const qr = await compileRecipe(`recipes/${name}.qr`, host);
    const yaml = await compileRecipe(`recipes/${name}.yaml`, host);
    expect(qr.diagnostics).toEqual([]);
    expect(yaml.diagnostics).toEqual([]);
    expect(meaning(irToJson(yaml.ir!, yaml.sources))).toEqual(meaning(irToJson(qr.ir!, qr.sources)));
  });

  it('.qr is in canonical form', () => {
    const text = readFileSync(`${ROOT}recipes/${name}.qr`, 'utf8');
    expect(formatDsl({ path: `${name}.qr`, text }).value).toBe(text);
  });

  it('exported YAML re-reads to the same IR', async () => {
    const qr = await compileRecipe(`recipes/${name}.qr`, host);
    const exported = exportYaml(qr.ir!, qr.document!);
    expect(exported.diagnostics).toEqual([]);
    const again = await compileRecipe('exported.yaml', memorySourceHost({ 'exported.yaml': exported.value }));
    expect(again.diagnostics).toEqual([]);
    expect(meaning(irToJson(again.ir!, again.sources))).toEqual(meaning(irToJson(qr.ir!, qr.sources)));
  });
});
