import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDsl } from '../src/parse/dsl.js';
import { compactDiagnostic } from '../src/report/diagnostics.js';
import { memorySourceHost } from '../src/source-host.js';

const ROOT = join(import.meta.dirname, 'cases', 'dsl');

/** Every file of a case folder, by path relative to the folder. */
function caseFiles(dir: string, base = dir): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) Object.assign(out, caseFiles(full, base));
    else if (name.endsWith('.qr')) out[relative(base, full)] = readFileSync(full, 'utf8');
  }
  return out;
}

/** Parses a case folder's input.qr; imports resolve inside the folder. */
function parseCase(name: string) {
  const files = caseFiles(join(ROOT, name));
  const result = parseDsl({ path: 'input.qr', text: files['input.qr']! }, memorySourceHost(files));
  return { result, files };
}

describe('DSL golden cases', () => {
  for (const name of readdirSync(ROOT).sort()) {
    it(name, async () => {
      const { result } = parseCase(name);
      const diagnostics = result.diagnostics.map((d) => compactDiagnostic(d, result.value.sources)).join('\n');
      await expect(diagnostics + '\n').toMatchFileSnapshot(join(ROOT, name, 'diagnostics.txt'));
      await expect(JSON.stringify(result.value.document, null, 2) + '\n').toMatchFileSnapshot(join(ROOT, name, 'document.json'));
    });
  }

  it('keeps spans for every node the validator may blame', () => {
    const { result } = parseCase('kitchen-sink');
    const spans = result.value.spans;
    const text = (ptr: string, which: 'key' | 'value' = 'value') => {
      const s = spans.get(ptr)!;
      const span = which === 'key' ? s.key! : s.value;
      return result.value.sources.get(span.path)!.slice(span.start, span.end);
    };
    const mod = '/stages/1/groups/0/modifiers/0';
    expect(text('/stages/1', 'key')).toBe('quant');
    expect(text(mod, 'key')).toBe('QuantizationModifier');
    expect(text(`${mod}/args/scheme`, 'key')).toBe('scheme');
    expect(text(`${mod}/args/scheme`)).toBe('NVFP4');
    // Values from a binding are blamed on the use site.
    expect(text(`${mod}/args/ignore/1`)).toBe('common_ignore');
    expect(text(`${mod}/args/ignore/3`)).toBe('re"(?P<layer>\\d+)\\.shared_experts\\Z"');
    expect(text(`${mod}/args/kv_cache_scheme/num_bits`)).toBe('fp8');
    expect(text('/stages/1/groups/1', 'key')).toBe('gptq');
    expect(text('/stages/1/groups/1/modifiers/0/args/config_groups/group_0/weights/num_bits')).toBe('4');
    expect(text('/moe/rewrites/0', 'key')).toBe('Glm4MoeLiteMoE');
    expect(text('/moe/on_unsupported')).toBe('error');
    expect(text('/recipe/version')).toBe('"1.2.0"');
  });
});
