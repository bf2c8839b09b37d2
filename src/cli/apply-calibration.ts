/**
 * The calibration step of `quantc apply`: reads the data (or the embedded
 * text), tokenizes it with the model's tokenizer, runs the calibration pass
 * and turns its failures into one-line usage errors or diagnostics.
 */
import { basename, resolve } from 'node:path';
import { error, warning, type Diagnostic } from '../diagnostics.js';
import type { Device } from '../execute/runtime.js';
import { defaultApplyPrecision, describePrecision, type Precision } from '../execute/forward/precision.js';
import type { ApplyJob, ExtraTensor, StatisticsPass } from '../execute/types.js';
import type { GptqRun } from '../execute/gptq/gptq-job.js';
import type { SmoothRun } from '../execute/smoothquant/smoothquant-job.js';
import type { AwqRun } from '../execute/awq/awq-job.js';
import type { LayerTimings } from '../execute/pipeline/sequential.js';
import { needsStatistics } from '../execute/calibrate/activation-qparams.js';
import { UsageError, type CliIo } from './io.js';
import { layerStartProgress } from './layer-progress.js';
import { writeFileAtomic } from './write-output.js';

/** The calibration options of `apply` as given on the command line. */
export interface CalibrationArgs {
  readonly data: string | undefined;
  readonly samples: number;
  /** Undefined: 384, capped by the model's max_position_embeddings. */
  readonly seqLen: number | undefined;
  readonly batchSize: number;
  /** `--shuffle --seed S`: the records in the order of `datasets`' `shuffle(seed=S)`. */
  readonly shuffleSeed?: bigint;
  readonly coverage: string | undefined;
  readonly device: Device;
  /** `--precision`; undefined: {@link defaultApplyPrecision}. */
  readonly precision?: Precision;
}

/** The outcome: the job ready for its weight pass, or diagnostics that stop the run. */
export type CalibrationStep =
  | {
      readonly ok: true;
      readonly job: ApplyJob;
      /** Summary lines (calibration, coverage). */
      readonly lines: readonly string[];
      /** The same as data, for `--format json`. */
      readonly report: Readonly<Record<string, unknown>>;
      readonly diagnostics: readonly Diagnostic[];
      /** Writes the --coverage report (called once the checkpoint is written). */
      readonly writeReport: () => void;
    }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

/** llm-compressor examples' calibration length, used when --seq-len is not given. */
export const DEFAULT_SEQ_LEN = 384;

/** Calibrates `job` (which needs it) as `args` say; progress goes to stderr. */
export async function calibrateFromCli(job: ApplyJob, args: CalibrationArgs, io: CliIo): Promise<CalibrationStep> {
  const { DataFileError } = await import('../execute/calibrate/text-data.js');
  const { readCalibrationData } = await import('../execute/calibrate/dataset-file.js');
  const { loadChatTemplate, ChatTemplateError } = await import('../execute/tokenize/chat-template.js');
  const { calibrationSamples } = await import('../execute/calibrate/calibration-data.js');
  const { loadTokenizer, TokenizerError } = await import('../execute/tokenize/tokenizer.js');
  const { ForwardModel, UnsupportedModelError } = await import('../execute/forward/executor.js');
  const { windowDroppedInCalibration } = await import('../execute/forward/decoder-config.js');
  const { WeightFormatError } = await import('../execute/forward/dequantize.js');
  const { CheckpointError } = await import('../execute/safetensors-reader.js');
  const { calibrateJob, ExpertCoverageError, MissingStatisticsError } = await import('../execute/calibrate/calibrate-job.js');
  const { coverageSummary, formatExperts } = await import('../execute/calibrate/expert-coverage.js');
  const { coverageReport } = await import('../execute/calibrate/coverage-html.js');
  const { DEFAULT_CALIBRATION_TEXT } = await import('../execute/calibrate/default-text.js');
  const { GptqInputError } = await import('../execute/gptq/gptq-modifier.js');
  const { SmoothStatisticsError } = await import('../execute/smoothquant/smoothquant-modifier.js');
  const { AwqRunError } = await import('../execute/awq/awq-modifier.js');

  const dataPath = args.data === undefined ? undefined : resolve(io.cwd, args.data);
  let data: Awaited<ReturnType<typeof readCalibrationData>>;
  try {
    data = dataPath === undefined ? { kind: 'text', text: DEFAULT_CALIBRATION_TEXT } : await readCalibrationData(dataPath);
  } catch (e) {
    if (e instanceof DataFileError) throw new UsageError(`apply: --data: ${e.message}`);
    throw e;
  }
  let tokenizer: Awaited<ReturnType<typeof loadTokenizer>>;
  try {
    tokenizer = await loadTokenizer(job.modelDir);
  } catch (e) {
    if (e instanceof TokenizerError) throw new UsageError(`apply: ${e.message}; calibration tokenizes its data with the model's tokenizer.json.`);
    throw e;
  }
  let chat: Awaited<ReturnType<typeof loadChatTemplate>>;
  if (data.kind === 'records' && data.records.some((r) => typeof r !== 'string')) {
    try {
      chat = await loadChatTemplate(job.modelDir);
    } catch (e) {
      if (e instanceof ChatTemplateError) throw new UsageError(`apply: ${e.message}.`);
      throw e;
    }
    if (!chat) throw new UsageError(`apply: --data: ${args.data} holds conversations ("messages"), but the model has no chat template to render them (chat_template.jinja, or "chat_template" in tokenizer_config.json).`);
  }
  const fail = (d: Diagnostic): CalibrationStep => ({ ok: false, diagnostics: [d] });
  let model: Awaited<ReturnType<typeof ForwardModel.open>>;
  try {
    model = await ForwardModel.open(job.modelDir, args.device);
  } catch (e) {
    if (e instanceof UnsupportedModelError) return fail(error('forward-unsupported-model', `${e.message}; apply calibrates with the forward executor, so this recipe cannot run on this model.`));
    if (e instanceof WeightFormatError || e instanceof CheckpointError) return fail(error('forward-weight-unreadable', e.message));
    throw e;
  }
  if (job.offsetNorms?.length) {
    const { withRoundedOffsetNorms } = await import('../execute/offset-norms.js');
    model = model.withWeights(await withRoundedOffsetNorms(model.weights, job.offsetNorms, job.fusedExperts));
  }
  // Calibration attends as llm-compressor's sequential pipeline does, which leaves some models' sliding window out.
  const droppedWindow = windowDroppedInCalibration(model.config);
  model = model.asCalibrated();
  // GPUs by ordinal (`--device cuda:1`, `cuda:0,1`): the looped layer passes share the batches over them, the rest runs on the first.
  if (job.devices?.length && job.devices.every((d) => d.device === 'cuda')) model.deviceIds = job.devices.map((d) => d.deviceId ?? 0);
  const precision = model.usePrecision(args.precision ?? defaultApplyPrecision(model.config.dtype));
  if (precision.note) io.stderr(`note: calibration computes in ${describePrecision(precision)}\n`);
  const maxPositions = typeof model.raw.max_position_embeddings === 'number' ? model.raw.max_position_embeddings : DEFAULT_SEQ_LEN;
  const seqLen = args.seqLen ?? Math.min(DEFAULT_SEQ_LEN, maxPositions);
  const source = args.data ?? 'the embedded calibration text';
  let samples: ReturnType<typeof calibrationSamples>;
  try {
    samples = calibrationSamples(data, tokenizer, { samples: args.samples, seqLen, batchSize: args.batchSize, ...(args.shuffleSeed === undefined ? {} : { shuffleSeed: args.shuffleSeed }) }, chat);
  } catch (e) {
    if (e instanceof ChatTemplateError) throw new UsageError(`apply: --data: ${e.message}.`);
    throw e;
  }
  if (samples.samples === 0) {
    const what = data.kind === 'text' ? `fewer than one window of --seq-len ${seqLen} tokens` : 'no record with any token';
    return fail(error('apply-data-too-short', `${source} has ${what}; calibration needs at least one sample. Use a longer file or a smaller --seq-len.`));
  }
  const diagnostics: Diagnostic[] = [];
  const longest = Math.max(...samples.batches.flatMap((b) => b.map((row) => row.length)));
  if (droppedWindow !== null && longest > droppedWindow) {
    diagnostics.push(
      warning(
        'apply-window-ignored',
        `calibration attends over all ${longest} tokens of the longest sample, past this ${model.config.modelType} model's sliding window of ${droppedWindow} tokens, as llm-compressor's sequential pipeline does (its traced model builds no window mask); served, the model attends within the window, so the statistics are not those of the served attention. Use --seq-len ${droppedWindow} or less to calibrate within the window.`,
      ),
    );
  }
  const count = `${samples.samples} sample${samples.samples === 1 ? '' : 's'}`;
  if (args.data === undefined) io.stderr(`Calibrating on the embedded calibration text (no --data given): ${count}\n`);
  else {
    const how = [args.shuffleSeed === undefined ? '' : `shuffled with seed ${args.shuffleSeed}`, chat ? `conversations rendered with ${chat.source}` : ''].filter((s) => s !== '');
    io.stderr(`Calibrating on ${count} of ${args.data}${how.length > 0 ? ` (${how.join('; ')})` : ''}\n`);
  }
  const bar = layerStartProgress(io, 'calibrating');
  const progress = bar.onLayerStart;
  let calibrated: Awaited<ReturnType<typeof calibrateJob>>;
  let gptqRun: GptqRun | undefined;
  let smoothRun: SmoothRun | undefined;
  let awqRun: AwqRun | undefined;
  const started = performance.now();
  try {
    let current = job;
    let forward = model;
    // The modifiers run in recipe order, each its own pass (llm-compressor's independent pipeline): the smoothing stages
    // first, unless the recipe puts them after GPTQ, where they smooth the model GPTQ quantized.
    const smoothing = async (after: boolean): Promise<void> => {
      if (job.smoothquant && (job.smoothquant.afterGptq === true) === after) {
        const { smoothJob } = await import('../execute/smoothquant/smoothquant-job.js');
        smoothRun = await smoothJob(current, forward, samples.batches, { onLayerDone: layerProgress(io, performance.now(), 'smoothquant') });
        ({ job: current, model: forward } = smoothRun);
      }
      if (job.awq && (job.awq.afterGptq === true) === after) {
        const { awqJob } = await import('../execute/awq/awq-job.js');
        awqRun = await awqJob(current, forward, samples.batches, { onLayerDone: layerProgress(io, performance.now(), 'awq') });
        ({ job: current, model: forward } = awqRun);
      }
    };
    await smoothing(false);
    if (current.gptq) {
      const { gptqJob } = await import('../execute/gptq/gptq-job.js');
      const passes = current.ownPasses ?? [];
      // Another quantization modifier's static scales come from a pass of its own over the model as it then is.
      const own: ExtraTensor[] = [];
      const ownPass = async (p: StatisticsPass): Promise<void> => {
        const only = new Set(p.modules);
        const restricted = { ...current, gptq: undefined, ownPasses: undefined, modules: current.modules.filter((m) => only.has(m.name)), kvCacheScheme: p.kvCache ? current.kvCacheScheme : null };
        own.push(...((await calibrateJob(restricted, forward, samples.batches, { onLayerStart: progress })).job.extraTensors ?? []));
      };
      for (const p of passes.filter((x) => !x.afterGptq)) await ownPass(p);
      calibrated = gptqRun = await gptqJob(current, forward, samples.batches, { onLayerDone: layerProgress(io, performance.now(), 'gptq') });
      current = calibrated.job;
      const after = passes.filter((x) => x.afterGptq);
      if (after.length > 0 || job.smoothquant?.afterGptq || job.awq?.afterGptq) {
        const { OverlayWeights, solvedChanges } = await import('../execute/pipeline/overlay-weights.js');
        forward = forward.withWeights(new OverlayWeights(forward.weights, solvedChanges(forward.weights, current.solvedWeights ?? new Map(), job.fusedExperts), job.fusedExperts));
        for (const p of after) await ownPass(p);
        await smoothing(true);
      }
      // GPTQ's pass observed every static input; the other modifiers' own passes decide theirs.
      const replaced = new Set(own.map((t) => t.name));
      current = { ...current, extraTensors: [...(current.extraTensors ?? []).filter((t) => !replaced.has(t.name)), ...own] };
      calibrated = { ...calibrated, job: current };
    } else if (needsStatistics(current)) calibrated = await calibrateJob(current, forward, samples.batches, { onLayerStart: progress });
    else calibrated = { job: current, coverage: (smoothRun ?? awqRun)!.coverage, lowExperts: [], fallbackModules: [] };
  } catch (e) {
    bar.done();
    if (e instanceof GptqInputError) return fail(error('apply-failed', e.message));
    if (e instanceof SmoothStatisticsError) return fail(error('apply-failed', e.message));
    if (e instanceof AwqRunError) return fail(error('apply-failed', e.message));
    if (e instanceof ExpertCoverageError) {
      if (args.coverage !== undefined) io.stderr('The coverage report is not written when the run stops.\n');
      return fail(error('apply-expert-coverage', e.message));
    }
    if (e instanceof MissingStatisticsError) return fail(error('apply-failed', e.message));
    // A token id beyond the embedding table: the tokenizer does not belong to this model.
    if (e instanceof RangeError) return fail(error('apply-failed', `${e.message}; is DIR/tokenizer.json the model's own tokenizer?`));
    throw e;
  }
  const seconds = (performance.now() - started) / 1000;
  bar.done();
  const spec = job.calibration!;
  const { lowExperts, fallbackModules, coverage } = calibrated;
  if (lowExperts.length > 0 && spec.onLowCoverage === 'warning') {
    const empty = lowExperts.filter((e) => e.tokens === 0);
    diagnostics.push(
      warning(
        'apply-expert-coverage-low',
        `${lowExperts.length} expert${lowExperts.length === 1 ? '' : 's'} saw fewer than min_expert_tokens = ${spec.minExpertTokens} calibration tokens and keep ${lowExperts.length === 1 ? 'its' : 'their'} statistics: ${formatExperts(lowExperts)}.` +
          (empty.length > 0 ? ` ${empty.length} of them saw no token and ${empty.length === 1 ? 'is' : 'are'} quantized data-free (weights only).` : ''),
      ),
    );
  }
  if (lowExperts.length > 0 && spec.onLowCoverage === 'fallback') {
    diagnostics.push(
      warning(
        'apply-expert-fallback',
        `${lowExperts.length} expert${lowExperts.length === 1 ? '' : 's'} saw fewer than min_expert_tokens = ${spec.minExpertTokens} calibration tokens and ${lowExperts.length === 1 ? 'is' : 'are'} quantized data-free (weights only, ${fallbackModules.length} modules in an extra config group): ${formatExperts(lowExperts)}.`,
      ),
    );
  }
  const writeReport = (): void => {
    if (args.coverage === undefined) return;
    const path = resolve(io.cwd, args.coverage);
    writeFileAtomic(path, coverageReport(path, coverage, basename(job.modelDir)), dataPath === undefined ? [] : [dataPath]);
  };
  const short = samples.samples < args.samples ? ` (the data gives ${samples.samples} of the ${args.samples} requested)` : '';
  const lines = [
    `  calibration  ${count}${short}, ${samples.tokens} tokens (--seq-len ${seqLen}, --batch-size ${args.batchSize}) from ${source}, ${seconds.toFixed(1)} s (${Math.round(samples.tokens / seconds)} tokens/s on ${args.device})`,
    `  precision    ${describePrecision(precision)}`,
    `  coverage     ${coverageSummary(coverage, spec.minExpertTokens)}${fallbackModules.length > 0 ? `; ${fallbackModules.length} modules quantized data-free` : ''}`,
  ];
  if (smoothRun) lines.push(smoothSummary(smoothRun, job));
  if (awqRun) lines.push(awqSummary(awqRun, job));
  const smoothFloor = smoothRun ? scaleFloorWarning('smoothquant-scale-floor', smoothRun.reports, "SmoothQuant's smoothing scale hit llm-compressor's floor 1e-5", 'their activation range is zero or next to it: the smooth layer\'s weight there is divided by 1e-5') : null;
  if (smoothFloor) diagnostics.push(smoothFloor);
  const awqFloor = awqRun ? scaleFloorWarning('awq-scale-floor', awqRun.reports, "AWQ's chosen scale hit its floor 1e-4 (before normalisation)", 'their mean activation is zero or next to it') : null;
  if (awqFloor) diagnostics.push(awqFloor);
  if (gptqRun) {
    lines.push(gptqSummary(gptqRun, job));
    const fellBack = gptqRun.reports.filter((r) => r.method === 'rtn-fallback').map((r) => r.module);
    if (fellBack.length > 0) {
      diagnostics.push(
        warning(
          'gptq-fallback',
          `${fellBack.length} module${fellBack.length === 1 ? '' : 's'} could not be solved (the dampened Hessian is not positive definite) and ${fellBack.length === 1 ? 'was' : 'were'} rounded to nearest instead, as llm-compressor does: ${fellBack.slice(0, 8).join(', ')}${fellBack.length > 8 ? `, and ${fellBack.length - 8} more` : ''}. A larger dampening_frac or more calibration samples may help.`,
        ),
      );
    }
  }
  const report: Record<string, unknown> = {
    calibration: { samples: samples.samples, tokens: samples.tokens, seqLen, batchSize: args.batchSize, source, seconds, device: args.device, precision: { requested: precision.requested, runs: precision.runs, ...(precision.note ? { note: precision.note } : {}) } },
    coverage,
    ...(awqRun
      ? {
          awq: {
            duoScaling: job.awq!.duoScaling,
            nGrid: job.awq!.nGrid,
            mappings: awqRun.reports.map((r) => ({ smooth: r.smooth, balance: r.balance, parent: r.parent, ratio: r.point.ratio, duo: r.point.duo, initialLoss: r.losses[0], bestLoss: r.losses[r.best], channels: r.scales.length, flooredChannels: r.floored })),
            layers: awqRun.timings.map((t) => ({ layer: t.layer, statisticsSeconds: t.statistics / 1000, searchSeconds: t.modify / 1000, propagationSeconds: t.propagate / 1000 })),
          },
        }
      : {}),
    ...(smoothRun
      ? { smoothquant: { strength: job.smoothquant!.strength, mappings: smoothRun.reports.map((r) => ({ smooth: r.smooth, balance: r.balance, channels: r.scales.length, flooredChannels: r.floored })) } }
      : {}),
    ...(gptqRun
      ? {
          gptq: {
            hessians: gptqRun.hessians,
            modules: gptqRun.reports,
            fallbacks: gptqRun.reports.filter((r) => r.method !== 'gptq').map((r) => ({ module: r.module, method: r.method })),
            layers: gptqRun.timings.map((t) => ({ layer: t.layer, statisticsSeconds: t.statistics / 1000, solveSeconds: t.modify / 1000, propagationSeconds: t.propagate / 1000 })),
          },
        }
      : {}),
  };
  return { ok: true, job: calibrated.job, lines, report, diagnostics, writeReport };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Prints one line per finished layer of a sequential pass on stderr: its time by step and the estimated time left. */
function layerProgress(io: CliIo, started: number, what: 'gptq' | 'smoothquant' | 'awq'): (t: LayerTimings, layers: number) => void {
  return (t, layers) => {
    const elapsed = performance.now() - started;
    const left = (elapsed / (t.layer + 1)) * (layers - t.layer - 1);
    const modify = what === 'gptq' ? 'solve' : what === 'awq' ? 'grid search' : 'smoothing';
    const line = `${what} layer ${t.layer + 1}/${layers}: statistics ${seconds(t.statistics)}, ${modify} ${seconds(t.modify)}, propagation ${seconds(t.propagate)}; ${t.layer + 1 < layers ? `about ${seconds(left)} left` : 'done'}`;
    io.stderr(io.isTty ? `\r\x1b[K${line}${t.layer + 1 < layers ? '' : '\n'}` : `${line}\n`);
  };
}

/**
 * A warning naming every mapping some of whose channels got the floor scale
 * (a channel that carries nothing: dead in the calibration data, or a norm
 * weight of zero), with how many of its channels; null when none did.
 */
function scaleFloorWarning(code: string, reports: readonly { smooth: string; scales: ArrayLike<number>; floored: number }[], what: string, why: string): Diagnostic | null {
  const hit = reports.filter((r) => r.floored > 0);
  if (hit.length === 0) return null;
  const named = hit.slice(0, 8).map((r) => `${r.smooth} (${r.floored === r.scales.length ? 'all' : `${r.floored} of`} ${r.scales.length} channels)`);
  const channels = hit.reduce((n, r) => n + r.floored, 0);
  return warning(
    code,
    `${what} on ${channels} channel${channels === 1 ? '' : 's'} of ${hit.length} mapping${hit.length === 1 ? '' : 's'} (${why}): ${named.join(', ')}${hit.length > 8 ? `, and ${hit.length - 8} more` : ''}. Check the calibration data covers the model, or leave these layers out of the mappings.`,
  );
}

/** Channels at the scale floor, for the summary lines. */
function flooredTotal(reports: readonly { floored: number }[]): number {
  return reports.reduce((n, r) => n + r.floored, 0);
}

/** The summary line of a SmoothQuant run. */
function smoothSummary(run: SmoothRun, job: ApplyJob): string {
  const balance = run.reports.reduce((n, r) => n + r.balance.length, 0);
  const sum = (k: 'statistics' | 'modify' | 'propagate'): number => run.timings.reduce((a, t) => a + t[k], 0);
  return (
    `  smoothquant  ${run.reports.length} smooth layers balanced against ${balance} Linear layers (smoothing_strength ${job.smoothquant!.strength}); ${flooredTotal(run.reports)} channels at the scale floor; ` +
    `statistics ${seconds(sum('statistics'))}, smoothing ${seconds(sum('modify'))}, propagation ${seconds(sum('propagate'))}`
  );
}

/** The summary line of an AWQ run. */
function awqSummary(run: AwqRun, job: ApplyJob): string {
  const balance = run.reports.reduce((n, r) => n + r.balance.length, 0);
  const sum = (k: 'statistics' | 'modify' | 'propagate'): number => run.timings.reduce((a, t) => a + t[k], 0);
  const kept = run.reports.filter((r) => r.best === 0).length;
  return (
    `  awq          ${run.reports.length} mappings balanced against ${balance} Linear layers (n_grid ${job.awq!.nGrid}, duo_scaling ${String(job.awq!.duoScaling)}); ` +
    `${kept} kept the identity; ${flooredTotal(run.reports)} channels at the scale floor; statistics ${seconds(sum('statistics'))}, grid search ${seconds(sum('modify'))}, propagation ${seconds(sum('propagate'))}`
  );
}

/** The summary line of a GPTQ run. */
function gptqSummary(run: GptqRun, job: ApplyJob): string {
  const count = (m: string): number => run.reports.filter((r) => r.method === m).length;
  const sum = (k: 'statistics' | 'modify' | 'propagate'): number => run.timings.reduce((a, t) => a + t[k], 0);
  const loss = run.reports.reduce((a, r) => a + r.loss, 0);
  return (
    `  gptq         ${run.reports.length} modules in ${run.timings.length} layers from ${run.hessians} Hessians (one per distinct input); ` +
    `${count('gptq')} solved, ${count('rtn-fallback')} rounded to nearest after a failed Cholesky, ${count('rtn-coverage')} by the coverage policy; ` +
    `block_size ${job.gptq!.blockSize}, dampening_frac ${job.gptq!.dampeningFrac}; total loss ${loss.toPrecision(4)}; ` +
    `statistics ${seconds(sum('statistics'))}, solve ${seconds(sum('modify'))}, propagation ${seconds(sum('propagate'))}`
  );
}
