/**
 * Shared harness for validation tests: YAML recipe text in, compact
 * diagnostics (`line:col severity code message`) out.
 */
import { compactDiagnostic } from '../../src/report/diagnostics.js';
import { parseYaml } from '../../src/parse/yaml.js';
import { validateRecipe } from '../../src/validate/index.js';

/** Diagnostics of parsing and validating `text`, only those with `code` when given. */
export function diagnose(text: string, code?: string): string[] {
  const source = { path: 'recipe.yaml', text };
  const parsed = parseYaml(source);
  const all = [...parsed.diagnostics, ...(parsed.value ? validateRecipe(parsed.value.document, parsed.value.spans) : [])];
  const sources = new Map([[source.path, text]]);
  return all.filter((d) => code === undefined || d.code === code).map((d) => compactDiagnostic(d, sources));
}

/** Wraps modifier YAML (indented six spaces) in one stage and group. */
export function recipe(modifiers: string): string {
  return `quant_stage:\n  quant_modifiers:\n${modifiers.replace(/^\n/, '').trimEnd()}\n`;
}
