import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('regex-patterns', () => {
  it('reports an re: pattern Python cannot compile, wherever the modifier names it', () => {
    expect(
      diagnose(
        recipe(`
    SmoothQuantModifier: {mappings: [[["re:.*q_proj("], "re:.*input_layernorm"]]}
    QuantizationModifier: {targets: ["re:.*[", Linear], ignore: ["re:(?i:gate)"], scheme: W8A8}`),
      ).filter((d) => d.includes(' regex-')),
    ).toEqual([
      '3:40 error regex-invalid Invalid regular expression "re:.*q_proj(": /.*q_proj(/: Unterminated group',
      '4:38 error regex-invalid Invalid regular expression "re:.*[": Unterminated character set.',
      '4:66 error regex-unsupported Invalid regular expression "re:(?i:gate)": Scoped inline flags "(?flags:…)" are not supported; put global flags like "(?i)" at the start.',
    ]);
  });
  it('accepts valid patterns', () => {
    expect(diagnose(recipe(`
    QuantizationModifier: {targets: ["re:.*mlp\\\\.gate$", Linear], scheme: W8A8}`))).toEqual([]);
  });
});
