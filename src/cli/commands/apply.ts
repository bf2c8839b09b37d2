/**
 * `quantc apply RECIPE|PLAN --model DIR --out DIR`: runs a data-free plan
 * and writes a compressed-tensors checkpoint. With a saved plan, refuses to
 * run when the recipe, the model config or quantc changed since it was saved.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { error, hasErrors, type Diagnostic } from '../../diagnostics.js';
import { renderDiagnostics } from '../../report/diagnostics.js';
import { choice, parseCommandArgs } from '../args.js';
import { EXIT_ERRORS, EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';
import { planFromCli, reportFailedPlan } from '../plan-args.js';

const HELP = `Usage: quantc apply RECIPE|PLAN --model DIR --out DIR [options]

Runs the plan of RECIPE against the model folder DIR and writes a
compressed-tensors checkpoint (as llm-compressor would) to --out. Only
data-free recipes run today: QuantizationModifier with weight schemes
such as W4A16, W8A8, FP8_DYNAMIC, FP8_BLOCK, NVFP4A16, MXFP4.

PLAN is a plan saved with \`quantc plan --save\`; apply re-plans its
recipe and refuses to run if the recipe, the model's config.json or the
quantc version changed since.

The output is written to a temporary folder next to --out and renamed
into place when complete; --out must not exist. The input folder is only
read.

Options:
  --model DIR              Model folder with config.json and safetensors.
  --out DIR                Output folder (must not exist).
  --device cpu|cuda        Where the quantization graphs run (default cpu).
                           cuda needs \`npm run setup:cuda\` first.
  --max-shard-size GB      Largest output shard in GB (default 20).
  -h, --help               Show this help.

Exit status: 0 written, 1 errors in the recipe, plan or model,
2 bad usage or unreadable input.
`;

interface SavedPlan {
  readonly formatVersion: number;
  readonly quantc: string;
  readonly recipe: { readonly path: string; readonly hash: string };
  readonly model: { readonly id: string; readonly configHash: string };
}

function readSavedPlan(path: string): SavedPlan | null {
  if (!path.endsWith('.json')) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`apply: cannot read plan ${path}: ${(e as Error).message}`);
  }
  const p = parsed as Partial<SavedPlan>;
  if (typeof p.formatVersion !== 'number' || !p.recipe || !p.model) throw new UsageError(`apply: ${path} is not a saved plan`);
  return p as SavedPlan;
}

/** The `apply` command. */
export const command: Command = {
  name: 'apply',
  summary: 'Run a data-free plan and write a compressed-tensors checkpoint',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('apply', argv, {
      model: { type: 'string' },
      out: { type: 'string' },
      device: { type: 'string' },
      'max-shard-size': { type: 'string' },
    });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    if (positionals.length !== 1) throw new UsageError('apply: expected exactly one RECIPE or PLAN. See "quantc apply --help".');
    if (typeof values.out !== 'string') throw new UsageError('apply: --out DIR is required.');
    const device = choice('apply', 'device', values.device, ['cpu', 'cuda'] as const, 'cpu');
    const shardGb = values['max-shard-size'] === undefined ? 20 : Number(values['max-shard-size']);
    if (!(shardGb > 0)) throw new UsageError('apply: --max-shard-size must be a positive number of GB.');

    const input = resolve(io.cwd, positionals[0]!);
    const saved = readSavedPlan(input);
    const recipePath = saved ? resolve(io.cwd, saved.recipe.path) : positionals[0]!;
    const modelArg = (values.model as string | undefined) ?? saved?.model.id;
    if (modelArg === undefined) throw new UsageError('apply: --model DIR is required.');
    const planned = await planFromCli(recipePath, modelArg, io);
    if (!planned.build) return reportFailedPlan(planned, io);
    const diagnostics: Diagnostic[] = [...planned.diagnostics];
    const { plan } = planned.build;
    if (saved) {
      const stale: string[] = [];
      if (saved.recipe.hash !== plan.recipe.hash) stale.push('the recipe');
      if (saved.model.configHash !== plan.model.configHash) stale.push("the model's config.json");
      if (saved.quantc !== plan.quantc) stale.push(`quantc (${saved.quantc} -> ${plan.quantc})`);
      if (stale.length > 0) diagnostics.push(error('apply-stale-plan', `The saved plan no longer matches: ${stale.join(', ')} changed since it was saved. Run \`quantc plan --save\` again.`));
    }
    if (!hasErrors(diagnostics) && (!planned.model || planned.model.source.kind !== 'folder' || !planned.model.checkpoint)) {
      diagnostics.push(error('apply-needs-weights', `apply needs a model folder with config.json and safetensors weights; ${modelArg} has none.`));
    }
    if (hasErrors(diagnostics)) {
      io.stderr(renderDiagnostics(diagnostics, planned.sources));
      return EXIT_ERRORS;
    }
    const { savedRecipeYaml } = await import('../../export/saved-recipe.js');
    const recipeYaml = savedRecipeYaml(planned.ir!);

    const { jobFromPlan, PlanNotExecutableError } = await import('../../execute/from-plan.js');
    const { applyJob, ApplyError } = await import('../../execute/apply.js');
    const { OutputExistsError } = await import('../../execute/output-dir.js');
    const { RuntimeUnavailableError } = await import('../../execute/runtime.js');
    const { progressPrinter, formatSummary } = await import('../../execute/progress.js');
    try {
      const job = jobFromPlan(planned.build, {
        modelDir: planned.model!.source.path,
        outDir: resolve(io.cwd, values.out),
        device,
        recipeYaml,
        maxShardBytes: shardGb * 1e9,
      });
      const summary = await applyJob(job, progressPrinter(io.stderr, io.isTty));
      io.stdout(formatSummary({ ...summary, outDir: values.out }, device));
      return EXIT_OK;
    } catch (e) {
      if (e instanceof OutputExistsError) throw new UsageError(`apply: ${e.message}`);
      if (e instanceof PlanNotExecutableError) {
        io.stderr(renderDiagnostics([error('apply-needs-calibration', e.message)], planned.sources));
        return EXIT_ERRORS;
      }
      if (e instanceof ApplyError || e instanceof RuntimeUnavailableError) {
        io.stderr(renderDiagnostics([error('apply-failed', e.message)], planned.sources));
        return EXIT_ERRORS;
      }
      throw e;
    }
  },
};
