/**
 * `quantc plan RECIPE --model PATH|MODEL_ID`: the dry run. Prints what the
 * recipe will do to the model (text, JSON or Markdown), optionally saves the
 * plan JSON with the hashes `apply` checks.
 */
import { existsSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { hasErrors } from '../../diagnostics.js';
import type { PlannedRecipe } from '../../plan/plan-recipe.js';
import type { Plan } from '../../plan/types.js';
import { renderDiagnostics } from '../../report/diagnostics.js';
import { renderPlanMarkdown } from '../../report/plan-markdown.js';
import { renderPlanText } from '../../report/plan-text.js';
import { choice, parseCommandArgs } from '../args.js';
import { EXIT_ERRORS, EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';
import { planFromCli, reportFailedPlan } from '../plan-args.js';
import { writeFileAtomic } from '../write-output.js';

const HELP = `Usage: quantc plan RECIPE [--model PATH|MODEL_ID] [options]

Compiles RECIPE against a model's module tree and prints the plan: which
MoE blocks get a calibration rewrite, which modules get which scheme, what
is ignored and why, the calibration pipeline and size estimates. Reads
only config.json and safetensors headers; nothing is executed.

--model takes a model folder, a config.json, a module-tree JSON, or a
model id ORG/NAME[@REVISION]: from the Hugging Face cache, else a bundled
config (e.g. zai-org/GLM-4.7-Flash), else config.json downloaded from the
Hub into the cache. Without it, the recipe's \`model "…"\` line is used.

Options:
  --model PATH|ID          The model to plan against.
  --format text|json|markdown
                           Output format (default text).
  --out FILE               Write the output to FILE instead of stdout.
  --save FILE              Also save the plan JSON (with recipe, config and
                           quantc hashes) for a later \`quantc apply FILE\`.
  --fail-on error|warning  Exit 1 on errors (default) or on warnings too.
  -h, --help               Show this help.

Exit status: 0 plan without errors, 1 errors (or warnings with
--fail-on warning), 2 bad usage or unreadable input.
`;

/** Absolute paths of the files a plan read: the recipe and its imports, and the model's config or module-tree JSON. */
function planInputs(planned: PlannedRecipe, cwd: string): string[] {
  const inputs = [...planned.sources.keys()].map((p) => resolve(cwd, p));
  const model = planned.model?.source;
  if (model?.kind === 'folder') inputs.push(...MODEL_FOLDER_FILES.map((f) => resolve(cwd, model.path, f)));
  else if (model && model.kind !== 'hub') inputs.push(resolve(cwd, model.path));
  return inputs;
}

/** The files quantc reads from a model folder (safetensors files are binary, never a plan's name). */
const MODEL_FOLDER_FILES = ['config.json', 'model.safetensors.index.json'];

/**
 * The plan as saved: the recipe path, and the model when it is a local
 * path, relative to the plan file's folder, so that `apply plan.json`
 * finds them from any working directory.
 */
function portablePlan(plan: Plan, cwd: string, planDir: string): Plan {
  const rel = (p: string): string => relative(planDir, resolve(cwd, p)) || '.';
  const local = plan.model.source !== 'hub' && existsSync(resolve(cwd, plan.model.id));
  return { ...plan, recipe: { ...plan.recipe, path: rel(plan.recipe.path) }, model: { ...plan.model, id: local ? rel(plan.model.id) : plan.model.id } };
}

/** The `plan` command. */
export const command: Command = {
  name: 'plan',
  summary: 'Dry-run a recipe against a model',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('plan', argv, {
      model: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      save: { type: 'string' },
      'fail-on': { type: 'string' },
    });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    const format = choice('plan', 'format', values.format, ['text', 'json', 'markdown'] as const, 'text');
    const failOn = choice('plan', 'fail-on', values['fail-on'], ['error', 'warning'] as const, 'error');
    if (positionals.length !== 1) throw new UsageError('plan: expected exactly one RECIPE. See "quantc plan --help".');
    const planned = await planFromCli(positionals[0]!, values.model as string | undefined, io);
    if (!planned.build) return reportFailedPlan(planned, io, format);
    const { plan } = planned.build;
    const rendered =
      format === 'json'
        ? `${JSON.stringify(plan, null, 2)}\n`
        : format === 'markdown'
          ? renderPlanMarkdown(plan)
          : renderPlanText(plan, renderDiagnostics(planned.diagnostics, planned.sources));
    const save = typeof values.save === 'string' ? resolve(io.cwd, values.save) : undefined;
    const out = typeof values.out === 'string' ? resolve(io.cwd, values.out) : undefined;
    if (save !== undefined && save === out) throw new UsageError('plan: --out and --save must name different files.');
    const inputs = planInputs(planned, io.cwd);
    if (save !== undefined) writeFileAtomic(save, `${JSON.stringify(portablePlan(plan, io.cwd, dirname(save)), null, 2)}\n`, inputs);
    if (out !== undefined) writeFileAtomic(out, rendered, inputs);
    else io.stdout(rendered);
    if (hasErrors(planned.diagnostics)) return EXIT_ERRORS;
    if (failOn === 'warning' && planned.diagnostics.some((d) => d.severity === 'warning')) return EXIT_ERRORS;
    return EXIT_OK;
  },
};
