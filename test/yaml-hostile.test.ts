import { describe, expect, it } from 'vitest';
import { compileRecipe } from '../src/compile.js';
import { parseYaml } from '../src/parse/yaml.js';
import { isDiagnostic, memorySourceHost, nodeSourceHost } from '../src/source-host.js';

const codes = (text: string): string[] => parseYaml({ path: 'r.yaml', text }).diagnostics.map((d) => d.code);

describe('hostile YAML input', () => {
  it('rejects an alias bomb without expanding it', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    const result = parseYaml({ path: 'r.yaml', text: `${lines.join('\n')}\n` });
    expect(result.value).toBeNull();
    expect(result.diagnostics.map((d) => d.code)).toEqual(['yaml-alias-limit']);
  });

  it('rejects deeply nested flow collections', () => {
    expect(codes(`quant_stage: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`)).toEqual(['yaml-too-deep']);
  });

  it('rejects deeply nested block mappings', () => {
    const text = Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n') + ' 1\n';
    expect(codes(text)).toEqual(['yaml-too-deep']);
  });

  it('reports a 10 MB recipe as too large', async () => {
    const big = `quant_stage:\n  quant_modifiers:\n    GPTQModifier: {scheme: W4A16}\n# ${'x'.repeat(10 * 1024 * 1024)}\n`;
    const result = await compileRecipe('big.yaml', memorySourceHost({ 'big.yaml': big }));
    expect(result.diagnostics.map((d) => d.code)).toEqual(['file-too-large']);
  });

  it('stops reading an endless device after the size limit', () => {
    const result = nodeSourceHost.read('/dev/zero');
    expect(isDiagnostic(result) && result.code).toBe('file-too-large');
  });

  it('reports empty and binary files', async () => {
    const host = memorySourceHost({ 'empty.yaml': '', 'bin.yaml': 'a\u0000b' });
    expect((await compileRecipe('empty.yaml', host)).diagnostics.map((d) => d.code)).toEqual(['file-empty']);
    expect((await compileRecipe('bin.yaml', host)).diagnostics.map((d) => d.code)).toEqual(['file-binary']);
  });

  it('reports a document that is not a mapping', () => {
    expect(codes('- GPTQModifier\n')).toEqual(['recipe-not-mapping']);
  });

  it('warns about a recipe with no modifiers, like a bare modifier at the root', () => {
    expect(codes('GPTQModifier: {scheme: W4A16}\n')).toEqual(['top-level-key-ignored', 'no-modifiers']);
  });

  it('rejects top-level args that are not a mapping, as pydantic would', () => {
    expect(codes('args: [1]\nquant_stage:\n  quant_modifiers:\n    GPTQModifier: {scheme: W4A16}\n')).toEqual(['invalid-type']);
  });

  it('reports an alias to nothing', () => {
    expect(codes('quant_stage: *nothing\n')).toContain('yaml-syntax');
  });
});

describe("llm-compressor's own recipe.yaml", () => {
  it('reads its Python tuples (SmoothQuant mappings) as lists and ActivationOrdering as its value, without warnings', async () => {
    const text = [
      'default_stage:',
      '  default_modifiers:',
      '    SmoothQuantModifier:',
      '      smoothing_strength: 0.8',
      '      mappings:',
      '      - !!python/tuple',
      "        - ['re:.*q_proj', 're:.*k_proj', 're:.*v_proj']",
      '        - re:.*input_layernorm',
      '    GPTQModifier:',
      '      config_groups:',
      '        group_0:',
      '          targets: [Linear]',
      '          weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 32,',
      '            actorder: !!python/object/apply:compressed_tensors.quantization.quant_args.ActivationOrdering [static]}',
      '',
    ].join('\n');
    const result = await compileRecipe('recipe.yaml', memorySourceHost({ 'recipe.yaml': text }));
    expect(result.diagnostics).toEqual([]);
    const [sq, gptq] = result.ir!.modifiers;
    expect(sq!.args.mappings).toEqual([[['re:.*q_proj', 're:.*k_proj', 're:.*v_proj'], 're:.*input_layernorm']]);
    expect(gptq!.quantization!.groups[0]!.scheme.weights!.actorder).toBe('static');
  });
});
