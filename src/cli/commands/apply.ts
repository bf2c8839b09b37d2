/**
 * `quantc apply RECIPE|PLAN --model DIR --out DIR`: runs a plan (calibrating
 * first when its schemes need it) and writes a compressed-tensors checkpoint. With a saved plan, refuses to
 * run when the recipe, the model config or quantc changed since it was saved.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { error, hasErrors, type Diagnostic } from '../../diagnostics.js';
import { renderDiagnostics } from '../../report/diagnostics.js';
import { choice, nonNegativeInt, parseCommandArgs, positiveInt } from '../args.js';
import { EXIT_ERRORS, EXIT_OK, EXIT_USAGE, UsageError, type CliIo, type Command } from '../io.js';
import { planFromCli, reportFailedPlan } from '../plan-args.js';
import { planModel, planPath } from '../saved-plan-paths.js';
import { fileOutputProblem } from '../write-output.js';
import { parsePartSpec } from '../../execute/parts.js';
import { DeviceListError, formatDeviceList, parseDeviceList, type DeviceSlot } from '../../execute/device-list.js';

const HELP = `Usage: quantc apply RECIPE|PLAN --model DIR|ID --out DIR [options]

Runs the plan of RECIPE against the model folder DIR and writes a
compressed-tensors checkpoint (as llm-compressor would) to --out.
QuantizationModifier recipes run: data-free weight schemes (W4A16, W8A8,
FP8_DYNAMIC, FP8_BLOCK, NVFP4A16, MXFP4, ...) and schemes that need
calibration: NVFP4 (input global scales), FP8 (static input scales),
static INT8 input activations, and a kv_cache_scheme (k_scale, v_scale).
GPTQModifier recipes run on the sequential pipeline: per decoder layer,
one pass collects the Hessians of its Linear inputs, GPTQ solves the
layer's weights, a second pass feeds the quantized layer's outputs to
the next layer (one line of progress per layer on stderr).
A SmoothQuantModifier or an AWQModifier before them runs its own pass
first: SmoothQuant smooths norm and Linear weights with llm-compressor's
mappings per architecture; AWQ searches each mapping's scales on a grid
against its parent module's output (docs/awq.md). Other algorithms
(SpinQuant, QuIP, ...) are refused.

Calibration runs the samples through the model layer by layer (one
layer's weights in memory at a time; architectures of \`quantc eval\`),
then the weight pass writes the calibrated scales with the weights.
Data: a plain text FILE is tokenized with DIR/tokenizer.json without
special tokens and cut into non-overlapping windows of --seq-len tokens.
Records (.jsonl, .json, .parquet, .arrow, or a datasets save_to_disk
folder) give one sample each, truncated to --seq-len, tokenized as
llm-compressor does: "text" with special tokens; chat "messages"
rendered with the model's chat template; "prompt" + "completion" joined.
Without --data, a small embedded English text (with some code and other
languages) is used.

PLAN is a plan saved with \`quantc plan --save\`; apply re-plans its
recipe and refuses to run if the recipe, the model's config.json or the
quantc version changed since.

The output is written to a temporary folder next to --out and renamed
into place when complete; --out must not exist. The input folder is only
read.

Options:
  --model DIR|ID           Model folder with config.json and safetensors,
                           or ORG/NAME[@REVISION] from the Hugging Face
                           cache (downloaded into it when absent).
  --out DIR                Output folder (must not exist).
  --device cpu|cuda        Where the calibration and quantization graphs
                           run (default cpu).
                           cuda needs \`npm run setup:cuda\` first.
  --precision bf16|fp32    What calibration computes in: bf16, the
                           checkpoint's dtype (bf16 or fp16), rounded where
                           transformers rounds, as llm-compressor runs the
                           model; fp32, float32 throughout. Default: bf16 on
                           cuda for a bf16/fp16 checkpoint, else fp32.
  --device cuda:0,1,...    Several GPUs of the host: with --weights-on
                           device the data-free weight pass spreads its
                           tensors over them (same output as one GPU);
                           the weights the CPU loops cannot take always
                           are; calibration passes share
                           their batches over them; GPTQ solves and the
                           AWQ search run on the first.
  --gpus N                 Short for --device cuda:0,...,N-1.
  --weights-on auto|cpu|device
                           With --device cuda, where the weight pass
                           quantizes and packs: cpu, in worker
                           threads (one per core, up to 16); device, in
                           graphs on the GPUs; auto (default), cpu, which
                           measured several times faster. The bytes
                           written are the same (docs/apply.md).
  --cpu-threads N          Worker threads of the CPU weight pass (default:
                           one per core, up to 16; 0: none, the main
                           thread quantizes). Fewer hold less memory.
  --max-shard-size GB      Largest output shard in GB (default 20).
  --shard I/N              Write only part I of N (0 <= I < N) of a
                           data-free checkpoint into --out; run the N
                           parts anywhere (one per host or GPU), then
                           \`quantc merge\` them (docs/distributed.md).
  --data FILE              Calibration text or records (default: the
                           embedded calibration text).
  --shuffle                Take the records in the order datasets'
                           shuffle(seed) gives (numpy's permutation).
  --seed N                 The seed of --shuffle (default 42).
  --samples N              Calibration samples, at most (default 512).
  --seq-len N              Tokens per sample (default 384, at most the
                           model's max_position_embeddings).
  --batch-size N           Samples per forward pass (default 1; observers
                           without memory keep only the last batch).
  --coverage FILE          Write the expert coverage of the calibration
                           (JSON, or an HTML heat map if FILE ends in .html).
  --fail-on error|warning  Stop before running on plan errors (default) or
                           on warnings too.
  -q, --quiet              No progress on stderr (diagnostics still).
  --format text|json       The summary on stdout as text (default) or JSON:
                           sizes, time, calibration, coverage, SmoothQuant
                           mappings, every GPTQ module with its loss and
                           method (gptq, rtn-fallback, rtn-coverage), and
                           the warnings.
  -h, --help               Show this help.

MoE recipes: an expert whose observers saw fewer than the recipe's
min_expert_tokens stops the run (on_low_coverage error, the default),
is reported (warning), or is quantized data-free (fallback).

Exit status: 0 written, 1 errors in the recipe, plan, model, data or
expert coverage, 2 bad usage or unreadable input.
`;

interface SavedPlan {
  readonly formatVersion: number;
  readonly quantc: string;
  readonly recipe: { readonly path: string; readonly hash: string };
  readonly model: { readonly id: string; readonly configHash: string };
}

/**
 * The saved plan in `path`, recognised by its own fields (format version,
 * quantc version, recipe and config hashes, steps), not by its extension:
 * any other file, a JSON recipe included, is a recipe.
 */
function readSavedPlan(path: string): SavedPlan | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
  const p = parsed as Partial<SavedPlan> & { steps?: unknown };
  const isPlan = typeof p === 'object' && p !== null && typeof p.formatVersion === 'number' && typeof p.quantc === 'string' && typeof p.recipe?.hash === 'string' && typeof p.model?.configHash === 'string' && Array.isArray(p.steps);
  return isPlan ? (p as SavedPlan) : null;
}

/** The `apply` command. */
export const command: Command = {
  name: 'apply',
  summary: 'Run a plan (calibrating if needed) and write a compressed-tensors checkpoint',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('apply', argv, {
      model: { type: 'string' },
      out: { type: 'string' },
      device: { type: 'string' },
      precision: { type: 'string' },
      gpus: { type: 'string' },
      'max-shard-size': { type: 'string' },
      data: { type: 'string' },
      samples: { type: 'string' },
      'seq-len': { type: 'string' },
      'batch-size': { type: 'string' },
      shuffle: { type: 'boolean' },
      seed: { type: 'string' },
      coverage: { type: 'string' },
      format: { type: 'string' },
      'fail-on': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      shard: { type: 'string' },
      'weights-on': { type: 'string' },
      'cpu-threads': { type: 'string' },
    });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    if (positionals.length !== 1) throw new UsageError('apply: expected exactly one RECIPE or PLAN. See "quantc apply --help".');
    if (typeof values.out !== 'string') throw new UsageError('apply: --out DIR is required.');
    let devices: DeviceSlot[];
    try {
      devices = parseDeviceList(values.device as string | undefined, values.gpus as string | undefined);
    } catch (e) {
      if (!(e instanceof DeviceListError)) throw e;
      io.stderr(renderDiagnostics([error('apply-device', `${e.message}.`)], new Map()));
      return EXIT_USAGE;
    }
    // The data-free weight pass and the looped calibration passes use every listed device; solves and searches the first.
    const device = devices[0]!.device;
    const format = choice('apply', 'format', values.format, ['text', 'json'] as const, 'text');
    const precision = values.precision === undefined ? undefined : choice('apply', 'precision', values.precision, ['bf16', 'fp32'] as const, 'fp32');
    const weightsOn = choice('apply', 'weights-on', values['weights-on'], ['auto', 'cpu', 'device'] as const, 'auto');
    if (values['weights-on'] !== undefined && devices.every((d) => d.device === 'cpu')) io.stderr('note: --weights-on chooses between the CPU and the GPUs; with --device cpu everything runs on the CPU\n');
    const cpuThreads = nonNegativeInt('apply', 'cpu-threads', values['cpu-threads'], undefined);
    const failOn = choice('apply', 'fail-on', values['fail-on'], ['error', 'warning'] as const, 'error');
    const shardGb = values['max-shard-size'] === undefined ? 20 : Number(values['max-shard-size']);
    if (!(shardGb > 0)) throw new UsageError('apply: --max-shard-size must be a positive number of GB.');
    const part = values.shard === undefined ? undefined : parsePartSpec(values.shard as string);
    if (part === null) throw new UsageError('apply: --shard must be I/N with 0 <= I < N, e.g. --shard 0/4.');
    const samples = positiveInt('apply', 'samples', values.samples, 512);
    const seqLen = positiveInt('apply', 'seq-len', values['seq-len'], undefined);
    const batchSize = positiveInt('apply', 'batch-size', values['batch-size'], 1);
    if (values.seed !== undefined && !values.shuffle) throw new UsageError('apply: --seed is the seed of --shuffle; add --shuffle.');
    if (values.seed !== undefined && !/^\d+$/.test(String(values.seed))) throw new UsageError(`apply: --seed must be a non-negative integer, not "${String(values.seed)}".`);
    // llm-compressor's examples shuffle with seed 42.
    const shuffleSeed = values.shuffle ? BigInt((values.seed as string | undefined) ?? '42') : undefined;
    if (existsSync(resolve(io.cwd, values.out))) throw new UsageError(`apply: ${values.out} already exists; choose a new --out folder`);
    const { outputProblem, removeStaleStages } = await import('../../execute/output-dir.js');
    const pathProblem = outputProblem(resolve(io.cwd, values.out), 0);
    if (pathProblem) throw new UsageError(`apply: ${pathProblem}`);
    // A run killed without cleanup (SIGKILL, power loss) leaves its temporary folder: remove it and say so.
    for (const stale of await removeStaleStages(resolve(io.cwd, values.out))) io.stderr(`note: removed ${stale}, left by an earlier run into ${values.out} that was killed before it finished\n`);
    if (typeof values.coverage === 'string') {
      const coverageProblem = fileOutputProblem(resolve(io.cwd, values.coverage));
      if (coverageProblem) throw new UsageError(`apply: --coverage: ${coverageProblem}`);
    }

    const input = resolve(io.cwd, positionals[0]!);
    const saved = readSavedPlan(input);
    const recipePath = saved ? planPath(input, saved.recipe.path, io.cwd) : positionals[0]!;
    const modelArg = (values.model as string | undefined) ?? (saved ? planModel(input, saved.model.id) : undefined);
    if (modelArg === undefined) throw new UsageError('apply: --model DIR is required.');
    const planned = await planFromCli(recipePath, modelArg, io, 'weights');
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
    if (!hasErrors(diagnostics)) {
      const { outputProblem } = await import('../../execute/output-dir.js');
      const space = outputProblem(resolve(io.cwd, values.out), planned.build.plan.summary.bytesAfter);
      if (space) diagnostics.push(error('apply-output-space', `${space}; free some space or choose another --out before the run, not after it.`));
    }
    // Warnings are shown before anything runs; with --fail-on warning they stop the run, as they stop `plan`.
    if (diagnostics.length > 0) io.stderr(renderDiagnostics(diagnostics, planned.sources));
    if (hasErrors(diagnostics) || (failOn === 'warning' && diagnostics.some((d) => d.severity === 'warning'))) return EXIT_ERRORS;
    if (device === 'cuda') {
      // A missing CUDA provider (or GPU of the list) is said before anything runs. cuBLAS reads its math mode once, so TF32 is
      // decided first: allowed when calibration computes in the checkpoint's 16-bit dtype (see precision.ts).
      const { allowCudaTf32, probeDevice, RuntimeUnavailableError } = await import('../../execute/runtime.js');
      const { checkpointFacts } = await import('../../execute/forward/executor.js');
      const { tf32Allowed } = await import('../../execute/forward/precision.js');
      const facts = await checkpointFacts(planned.model!.source.path).catch(() => ({ modelType: '', dtype: 'float32' }));
      allowCudaTf32(tf32Allowed(precision, device, facts.dtype, facts.modelType));
      try {
        for (const slot of devices) await probeDevice(slot.device, slot.deviceId);
      } catch (e) {
        if (!(e instanceof RuntimeUnavailableError)) throw e;
        io.stderr(renderDiagnostics([error('apply-failed', e.message)], new Map()));
        return EXIT_ERRORS;
      }
    }
    const { savedRecipeYaml } = await import('../../export/saved-recipe.js');
    const recipeYaml = savedRecipeYaml(planned.ir!);

    const { jobFromPlan, PlanNotExecutableError } = await import('../../execute/from-plan.js');
    const { applyJob, ApplyError } = await import('../../execute/apply.js');
    const { OutputExistsError } = await import('../../execute/output-dir.js');
    const { RuntimeUnavailableError, DeviceMemoryError } = await import('../../execute/runtime.js');
    const { CheckpointError } = await import('../../execute/safetensors-reader.js');
    const { WeightFormatError } = await import('../../execute/forward/dequantize.js');
    const { progressPrinter, formatSummary } = await import('../../execute/progress.js');
    try {
      const { storedNames } = await import('../../model/stored-names.js');
      const { openCheckpoint } = await import('../../execute/safetensors-reader.js');
      const stored = await openCheckpoint(planned.model!.source.path);
      let job = jobFromPlan(planned.build, {
        storedName: storedNames(planned.build.tree.modelType, (t) => stored.tensors.has(t)),
        modelDir: planned.model!.source.path,
        outDir: resolve(io.cwd, values.out),
        device,
        ...(devices.length > 1 || devices[0]!.deviceId !== undefined ? { devices } : {}),
        recipeYaml,
        maxShardBytes: shardGb * 1e9,
        moe: planned.ir!.moe,
        modifiers: planned.ir!.modifiers,
      });
      job = { ...job, weightsOn, ...(cpuThreads === undefined ? {} : { cpuWorkers: cpuThreads }) };
      if (part) {
        // Calibration needs every layer's inputs from the layers before it: it cannot be cut into independent tensors.
        const needs = [job.calibration && 'calibration', job.smoothquant && 'SmoothQuant', job.awq && 'AWQ', job.gptq && 'GPTQ'].filter(Boolean);
        if (needs.length > 0) {
          io.stderr(renderDiagnostics([error('apply-shard-calibrated', `--shard splits data-free weight passes only; this recipe needs ${needs.join(' and ')}, whose statistics flow layer to layer. Run it on one host (see docs/distributed.md).`)], planned.sources));
          return EXIT_ERRORS;
        }
        job = { ...job, part };
      }
      // The summary's time covers the whole run, calibration included.
      const started = performance.now();
      let lines: readonly string[] = [];
      let report: Readonly<Record<string, unknown>> = {};
      let warnings: readonly Diagnostic[] = [];
      let writeReport = (): void => undefined;
      if (job.calibration) {
        const { calibrateFromCli } = await import('../apply-calibration.js');
        // Progress and notes go to stderr; --quiet keeps only the diagnostics (returned, rendered here).
        const progressIo = values.quiet ? { ...io, stderr: () => undefined } : io;
        const step = await calibrateFromCli(job, { data: values.data as string | undefined, samples, seqLen, batchSize, ...(shuffleSeed === undefined ? {} : { shuffleSeed }), coverage: values.coverage as string | undefined, device, precision }, progressIo);
        if (step.diagnostics.length > 0) io.stderr(renderDiagnostics(step.diagnostics, planned.sources));
        if (!step.ok) return EXIT_ERRORS;
        ({ job, lines, report, writeReport } = step);
        warnings = step.diagnostics;
      } else if (values.data !== undefined || values.coverage !== undefined || values.shuffle || precision !== undefined) {
        io.stderr('note: the recipe needs no calibration; --data, --samples, --seq-len, --batch-size, --shuffle, --coverage and --precision are ignored\n');
      }
      const summary = await applyJob(job, values.quiet ? () => undefined : progressPrinter(io.stderr, io.isTty));
      writeReport();
      const total = { ...summary, outDir: values.out, seconds: (performance.now() - started) / 1000 };
      if (format === 'json') {
        const diagnostics = [...planned.diagnostics, ...warnings].map((d) => ({ code: d.code, severity: d.severity, message: d.message }));
        io.stdout(`${JSON.stringify({ formatVersion: 1, device: formatDeviceList(devices), ...total, ...(part ? { part } : {}), ...report, diagnostics }, null, 2)}\n`);
      } else {
        const partLine = part ? `  part         ${part.index}/${part.count}: merge all ${part.count} parts with \`quantc merge\`\n` : '';
        io.stdout(formatSummary(total, formatDeviceList(devices)) + partLine + lines.map((l) => `${l}\n`).join(''));
      }
      return EXIT_OK;
    } catch (e) {
      if (e instanceof OutputExistsError) throw new UsageError(`apply: ${e.message}`);
      if (e instanceof PlanNotExecutableError) {
        io.stderr(renderDiagnostics([error('apply-unsupported', e.message)], planned.sources));
        return EXIT_ERRORS;
      }
      if (e instanceof CheckpointError || e instanceof WeightFormatError) {
        io.stderr(renderDiagnostics([error('forward-weight-unreadable', e.message)], planned.sources));
        return EXIT_ERRORS;
      }
      if (e instanceof ApplyError || e instanceof RuntimeUnavailableError || e instanceof DeviceMemoryError) {
        io.stderr(renderDiagnostics([error('apply-failed', e.message)], planned.sources));
        return EXIT_ERRORS;
      }
      throw e;
    }
  },
};
