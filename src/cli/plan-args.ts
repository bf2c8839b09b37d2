/**
 * Shared by `plan`, `explain` and `diff`: hosts that resolve paths against
 * the CLI's working directory, and printing a failed plan's diagnostics.
 */
import type { ModelFiles } from '../model/resolve-model-ref.js';
import { planRecipe, type PlannedRecipe } from '../plan/plan-recipe.js';
import { diagnosticToJson, renderDiagnostics } from '../report/diagnostics.js';
import { QUANTC_VERSION } from '../version.js';
import { cwdSourceHost } from './cwd-host.js';
import { EXIT_ERRORS, EXIT_USAGE, type CliIo } from './io.js';
import { modelPathForCli } from './model-arg.js';

/** Plans `recipe` against `model` with the CLI's working directory; a model id brings `need` into the Hugging Face cache. */
export function planFromCli(recipe: string, model: string | undefined, io: CliIo, need: ModelFiles = 'config'): Promise<PlannedRecipe> {
  return planRecipe(
    recipe,
    model,
    {
      source: cwdSourceHost(io.cwd),
      resolveModel: (arg) => modelPathForCli(arg, need, io),
    },
    QUANTC_VERSION,
  );
}

/**
 * Prints why no plan could be made and returns the exit code (2 unreadable
 * input, 1 errors). With `--format json` the diagnostics go to stdout as
 * `{"diagnostics": [...]}`, in `check --format json`'s shape, so a tool
 * reading stdout always gets JSON.
 */
export function reportFailedPlan(planned: PlannedRecipe, io: CliIo, format: 'text' | 'json' | 'markdown' = 'text'): number {
  if (planned.unreadable) {
    const first = planned.diagnostics.find((d) => d.severity === 'error');
    io.stderr(`quantc: ${first?.message ?? 'cannot read the input.'}\n`);
    return EXIT_USAGE;
  }
  if (format === 'json') io.stdout(`${JSON.stringify({ diagnostics: planned.diagnostics.map((d) => diagnosticToJson(d, planned.sources)) }, null, 2)}\n`);
  else io.stderr(renderDiagnostics(planned.diagnostics, planned.sources));
  return EXIT_ERRORS;
}
