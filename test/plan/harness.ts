/** Plans in-memory recipes against fixture models, for the planner tests. */
import { compileRecipe } from '../../src/compile.js';
import { loadModel } from '../../src/model/load.js';
import { lowerToPlan, type PlanBuild } from '../../src/plan/lower.js';
import { memorySourceHost } from '../../src/source-host.js';

/** Compiles `recipeText` (named `path`, so the extension picks the front end) and plans it against `model`. */
export async function planText(path: string, recipeText: string, model: string): Promise<PlanBuild> {
  const compiled = await compileRecipe(path, memorySourceHost({ [path]: recipeText }));
  if (!compiled.ir) throw new Error(`recipe did not compile: ${JSON.stringify(compiled.diagnostics)}`);
  const loaded = loadModel(model);
  if (!loaded.value) throw new Error(`model did not load: ${JSON.stringify(loaded.diagnostics)}`);
  return lowerToPlan({
    recipePath: path,
    ir: compiled.ir,
    sources: compiled.sources,
    recipeDiagnostics: compiled.diagnostics,
    model: loaded.value,
    modelId: model,
    quantcVersion: '0.0.0-test',
  }).value;
}

/** A one-modifier YAML recipe with these targets and ignore entries. */
export function yamlRecipe(targets: readonly string[], ignore: readonly string[], scheme = 'FP8_DYNAMIC'): string {
  const list = (xs: readonly string[]) => `[${xs.map((x) => `'${x.replace(/'/g, "''")}'`).join(', ')}]`;
  return `quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      targets: ${list(targets)}\n      scheme: ${scheme}\n      ignore: ${list(ignore)}\n`;
}
