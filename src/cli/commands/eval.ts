/**
 * `quantc eval --model DIR --data FILE`: perplexity of a checkpoint (original
 * or compressed-tensors, dequantized on load) with the layer-by-layer
 * forward executor, so a user sees what quantization cost.
 */
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ExpertCoverage } from '../../execute/calibrate/coverage.js';
import { error, type Diagnostic } from '../../diagnostics.js';
import { renderDiagnostics } from '../../report/diagnostics.js';
import { layerStartProgress } from '../layer-progress.js';
import { modelPathForCli } from '../model-arg.js';
import { fileOutputProblem } from '../write-output.js';
import { choice, parseCommandArgs, positiveInt } from '../args.js';
import { EXIT_ERRORS, EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';
import { writeFileAtomic } from '../write-output.js';
import { comparableSide, comparisonLines, simulatedJson, simulatedLine } from '../eval-served.js';

const HELP = `Usage: quantc eval --model DIR|ID --data FILE [--simulate activations] [--baseline DIR|ID] [options]

Computes the perplexity of the model in DIR on the text in FILE, running
the model layer by layer on onnxruntime (one layer's weights in memory at
a time). Quantized compressed-tensors checkpoints (W4A16, W8A16, W8A8,
FP8, FP8_BLOCK, NVFP4, MXFP4, MXFP8 weights) are dequantized on load;
by default activations are not quantized (--simulate activations
quantizes them, and the kv cache, as the served model does).

Perplexity: FILE is tokenized with DIR/tokenizer.json without special
tokens and cut into non-overlapping windows of --seq-len tokens (a
trailing partial window is dropped); perplexity is exp of the mean
next-token negative log-likelihood over all predicted positions.

FILE is plain text, or JSON Lines (.jsonl) with a "text" field per line
(joined with blank lines).

Options:
  --model DIR|ID           Model folder: config.json, safetensors, tokenizer.json;
                           or ORG/NAME[@REVISION] from the Hugging Face cache
                           (downloaded into it when absent).
  --data FILE              Text or .jsonl file to evaluate on.
  --seq-len N              Window length in tokens (default: the smaller of
                           2048 and the model's max_position_embeddings).
  --batch-size N           Windows per forward pass (default 1).
  --simulate weights|activations
                           weights (default): only the weights are
                           quantized. activations: also the Linear inputs
                           and the kv cache, as the checkpoint's
                           quantization_config says (dynamic per-token or
                           per-group, static input_scale, NVFP4 local scales,
                           k_scale/v_scale), fake-quantized as
                           compressed-tensors' forward does.
  --baseline DIR|ID        Also run this model (same architecture and
                           tokenizer, e.g. the unquantized original; a folder
                           or a model id as for --model) on the same windows:
                           both perplexities, their ratio and each decoder
                           layer's output drift.
  --device cpu|cuda        Where the graphs run (default cpu).
  --precision bf16|fp32    What the forward passes compute in: bf16, the
                           checkpoint's dtype (bf16 or fp16), rounded where
                           transformers rounds; fp32, float32 throughout.
                           Default: bf16 on cuda for a bf16/fp16
                           checkpoint, else fp32.
  --format text|json       Output format (default text).
  --coverage FILE          Write the expert coverage of MoE models (tokens
                           routed to each expert of each MoE layer): JSON,
                           or a self-contained HTML heat map if FILE ends
                           in .html.
  -q, --quiet              No progress on stderr (diagnostics still).
  -h, --help               Show this help.

Exit status: 0 done, 1 the model cannot be run or the data is too short,
2 bad usage or unreadable input.
`;

/** One summary line for MoE models: the least-routed expert. */
function coverageLines(c: ExpertCoverage): string[] {
  if (c.layers.length === 0) return [];
  let least = { layer: 0, expert: 0, tokens: Infinity };
  for (const l of c.layers) l.routed.forEach((n, e) => n < least.tokens && (least = { layer: l.layer, expert: e, tokens: n }));
  return [`  experts      ${c.layers.length} MoE layers; least routed: layer ${least.layer} expert ${least.expert} (${least.tokens} of ${c.tokens} tokens)`];
}

/** The `eval` command. */
export const command: Command = {
  name: 'eval',
  summary: 'Perplexity of a model or quantized checkpoint on a text file',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('eval', argv, {
      model: { type: 'string' },
      data: { type: 'string' },
      'seq-len': { type: 'string' },
      'batch-size': { type: 'string' },
      device: { type: 'string' },
      precision: { type: 'string' },
      format: { type: 'string' },
      coverage: { type: 'string' },
      simulate: { type: 'string' },
      baseline: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
    });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    if (positionals.length > 0) throw new UsageError(`eval: unexpected argument "${positionals[0]}". See "quantc eval --help".`);
    if (typeof values.model !== 'string') throw new UsageError('eval: --model DIR is required.');
    if (typeof values.data !== 'string') throw new UsageError('eval: --data FILE is required.');
    const device = choice('eval', 'device', values.device, ['cpu', 'cuda'] as const, 'cpu');
    const format = choice('eval', 'format', values.format, ['text', 'json'] as const, 'text');
    const requested = values.precision === undefined ? undefined : choice('eval', 'precision', values.precision, ['bf16', 'fp32'] as const, 'fp32');
    const batchSize = positiveInt('eval', 'batch-size', values['batch-size'], 1);
    const simulate = choice('eval', 'simulate', values.simulate, ['weights', 'activations'] as const, 'weights');
    const modelDir = await modelPathForCli(values.model, 'weights', io);
    if (typeof modelDir !== 'string') throw new UsageError(`eval: ${modelDir.message}`);
    if (!existsSync(join(modelDir, 'config.json'))) throw new UsageError(`eval: ${values.model} has no config.json.`);
    const baselineArg = typeof values.baseline === 'string' ? values.baseline : null;
    const baselinePath = baselineArg === null ? null : await modelPathForCli(baselineArg, 'weights', io);
    if (baselinePath !== null && typeof baselinePath !== 'string') throw new UsageError(`eval: --baseline: ${baselinePath.message}`);
    const baselineDir = baselinePath;
    if (baselineDir) {
      if (!existsSync(join(baselineDir, 'config.json'))) throw new UsageError(`eval: --baseline ${baselineArg} has no config.json.`);
      const { incomparability } = await import('../../execute/calibrate/compare.js');
      const why = incomparability(comparableSide(modelDir, values.model), comparableSide(baselineDir, baselineArg!));
      if (why) throw new UsageError(`eval: ${why}.`);
    }
    if (typeof values.coverage === 'string') {
      const problem = fileOutputProblem(resolve(io.cwd, values.coverage));
      if (problem) throw new UsageError(`eval: --coverage: ${problem}`);
    }

    const { readTextData, DataFileError } = await import('../../execute/calibrate/text-data.js');
    const { loadTokenizer, TokenizerError } = await import('../../execute/tokenize/tokenizer.js');
    const { checkpointFacts, ForwardModel, UnsupportedModelError } = await import('../../execute/forward/executor.js');
    const { WeightFormatError } = await import('../../execute/forward/dequantize.js');
    const { CheckpointError } = await import('../../execute/safetensors-reader.js');
    const { allowCudaTf32, probeDevice, RuntimeUnavailableError, DeviceMemoryError } = await import('../../execute/runtime.js');
    const { perplexity } = await import('../../execute/calibrate/perplexity.js');
    const { defaultPrecision, describePrecision, tf32Allowed } = await import('../../execute/forward/precision.js');
    const { comparePerplexity } = await import('../../execute/calibrate/compare.js');
    const { servedModel, SimulationUnsupportedError } = await import('../../execute/simulate/simulating-weights.js');
    const { FakeQuantError } = await import('../../execute/simulate/fake-quant.js');
    const { ActivationConfigError } = await import('../../execute/simulate/activation-args.js');

    let text: string;
    try {
      text = await readTextData(resolve(io.cwd, values.data));
    } catch (e) {
      if (e instanceof DataFileError) throw new UsageError(`eval: ${e.message}`);
      throw e;
    }
    const fail = (d: Diagnostic): number => {
      io.stderr(renderDiagnostics([d], new Map()));
      return EXIT_ERRORS;
    };
    try {
      // A missing CUDA provider is said before the model is read.
      if (device === 'cuda') {
        // cuBLAS reads its math mode once: TF32 is decided before the first CUDA session.
        const facts = await checkpointFacts(modelDir).catch(() => ({ modelType: '', dtype: 'float32' }));
        allowCudaTf32(tf32Allowed(requested, device, facts.dtype, facts.modelType));
        await probeDevice(device);
      }
      const tokenizer = await loadTokenizer(modelDir);
      const opened = await ForwardModel.open(modelDir, device);
      const precision = opened.usePrecision(requested ?? defaultPrecision(device, opened.config.dtype));
      if (precision.note && !values.quiet) io.stderr(`note: eval computes in ${describePrecision(precision)}\n`);
      const served = simulate === 'activations' ? servedModel(opened) : { model: opened, weights: null };
      const model = served.model;
      const baseline = baselineDir ? await ForwardModel.open(baselineDir, device) : null;
      // The baseline runs in the precision asked for the model (the default follows its own dtype).
      baseline?.usePrecision(requested ?? defaultPrecision(device, baseline.config.dtype));
      const baselineModel = baseline && simulate === 'activations' ? servedModel(baseline).model : baseline;
      const maxPositions = typeof model.raw.max_position_embeddings === 'number' ? model.raw.max_position_embeddings : 2048;
      const seqLen = positiveInt('eval', 'seq-len', values['seq-len'], Math.min(2048, maxPositions));
      const ids = tokenizer.encode(text);
      if (ids.length < seqLen) {
        return fail(error('eval-data-too-short', `${values.data} has ${ids.length} tokens, fewer than one window of --seq-len ${seqLen}; use a longer file or a smaller --seq-len.`));
      }
      const started = performance.now();
      // One redrawn line on a terminal, a line per layer otherwise.
      const bar = layerStartProgress(values.quiet ? { ...io, stderr: () => undefined } : io, 'evaluating');
      const compared = baselineModel ? await comparePerplexity(model, baselineModel, ids, seqLen, batchSize, { onLayerStart: bar.onLayerStart }) : null;
      const r = compared ? compared.model : await perplexity(model, ids, seqLen, batchSize, { onLayerStart: bar.onLayerStart });
      bar.done();
      const summary = served.weights?.summary() ?? null;
      const seconds = (performance.now() - started) / 1000;
      const tokensPerSecond = r.tokens / seconds;
      const { coverage, ...result } = r;
      if (typeof values.coverage === 'string') {
        const path = resolve(io.cwd, values.coverage);
        const { coverageReport } = await import('../../execute/calibrate/coverage-html.js');
        writeFileAtomic(path, coverageReport(path, coverage, basename(modelDir)), [resolve(io.cwd, values.data)]);
      }
      if (format === 'json') {
        const comparison = compared
          ? { baseline: { model: baselineArg, perplexity: compared.baseline.perplexity, meanNll: compared.baseline.meanNll }, ratio: compared.ratio, layerDrift: compared.layerDrift }
          : {};
        const precisionJson = { requested: precision.requested, runs: precision.runs, ...(precision.note ? { note: precision.note } : {}) };
        const report = { model: values.model, data: values.data, seqLen, batchSize, device, precision: precisionJson, ...simulatedJson(simulate, summary), ...result, ...comparison, seconds, tokensPerSecond };
        io.stdout(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        io.stdout(
          [
            compared
              ? `perplexity: ${r.perplexity.toFixed(4)} vs ${compared.baseline.perplexity.toFixed(4)} baseline (ratio ${compared.ratio.toFixed(6)})`
              : `perplexity: ${r.perplexity.toFixed(4)}`,
            `  mean NLL     ${r.meanNll.toFixed(6)} nats over ${r.predicted} predicted tokens`,
            ...(compared ? comparisonLines(compared, baselineArg!) : []),
            simulatedLine(simulate, summary),
            `  windows      ${r.windows} x ${seqLen} tokens (${ids.length - r.tokens} trailing tokens dropped)`,
            `  precision    ${describePrecision(precision)}`,
            `  speed        ${tokensPerSecond.toFixed(0)} tokens/s on ${device} (${seconds.toFixed(2)} s)`,
            ...coverageLines(coverage),
            '',
          ].join('\n'),
        );
      }
      return EXIT_OK;
    } catch (e) {
      if (e instanceof TokenizerError) return fail(error('eval-no-tokenizer', `${e.message}; eval tokenizes --data with the model's tokenizer.json.`));
      if (e instanceof UnsupportedModelError) return fail(error('forward-unsupported-model', e.message));
      if (e instanceof WeightFormatError || e instanceof CheckpointError) return fail(error('forward-weight-unreadable', e.message));
      if (e instanceof RuntimeUnavailableError) return fail(error('forward-runtime-unavailable', e.message));
      if (e instanceof DeviceMemoryError) return fail(error('forward-device-memory', e.message));
      if (e instanceof SimulationUnsupportedError || e instanceof FakeQuantError || e instanceof ActivationConfigError) return fail(error('eval-simulate-unsupported', e.message));
      throw e;
    }
  },
};
