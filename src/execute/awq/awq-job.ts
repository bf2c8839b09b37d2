/**
 * The AWQ stage of `apply`: its own full sequential pass (llm-compressor's
 * independent pipeline runs each modifier alone), after which the next
 * stage (the quantization modifier's weight pass, or GPTQ) works on the
 * smoothed model: the forward model reads the smoothed weights, and the job
 * carries them in their stored dtype for the weight pass.
 */
import { storedBytes } from '../dtypes.js';
import type { ForwardModel, TokenBatch } from '../forward/executor.js';
import { OverlayWeights } from '../pipeline/overlay-weights.js';
import { runBytesFor, runSequential, type SequentialOptions } from '../pipeline/sequential.js';
import type { ApplyJob } from '../types.js';
import type { StageRun } from '../pipeline/stage-run.js';
import { AwqModifier, type AwqReport, type AwqSettings } from './awq-modifier.js';

/** An AWQ run: the job and model the next stage continues with, and what was smoothed. */
export type AwqRun = StageRun<AwqReport> & {
  readonly profile: AwqModifier['profile'];
  /** Whether the searches ran on the layers' input stacks (see AwqSettings.recompute) rather than on cached inputs. */
  readonly stacked: boolean;
};

/** Runs AWQ for `job` (which carries `awq`) on `batches`. */
export async function awqJob(job: ApplyJob, model: ForwardModel, batches: readonly TokenBatch[], options: SequentialOptions & Pick<AwqSettings, 'searchBytes' | 'candidates' | 'recompute' | 'joint'> = {}): Promise<AwqRun> {
  const spec = job.awq!;
  const calibrateAllExperts = job.calibration?.calibrateAllExperts ?? true;
  const args = new Map(job.modules.map((m) => [m.name, job.groups[m.group]!.scheme.weights!] as const));
  const modifier = new AwqModifier(model, spec.mappings, { duoScaling: spec.duoScaling, nGrid: spec.nGrid, args, calibrateAllExperts, searchBytes: options.searchBytes, candidates: options.candidates, recompute: options.recompute, joint: options.joint, fusedExperts: job.fusedExperts, offsetNorms: new Set(job.offsetNorms ?? []) });
  // The cached inputs and the sums do not depend on batch boundaries, so batches may share a graph run.
  const timings = await runSequential(model, batches, modifier, job.fusedExperts, { runBytes: runBytesFor(model.device, 1 << 28), ...options });
  const dtype = model.config.dtype;
  const prior = job.changedWeights;
  // Quantized Linears are quantized from their smoothed bytes; the others (an ignored router) are written as smoothed tensors.
  const quantized = new Set(job.modules.map((m) => m.name));
  const linears = new Map([...(prior?.linears ?? []), ...[...modifier.linears].filter(([name]) => quantized.has(name)).map(([name, w]) => [name, storedBytes(w.data, dtype)] as const)]);
  const tensors = new Map([
    ...(prior?.tensors ?? []),
    ...[...modifier.vectors].map(([name, v]) => [name, storedBytes(v, dtype)] as const),
    ...[...modifier.linears].filter(([name]) => !quantized.has(name)).map(([name, w]) => [`${name}.weight`, storedBytes(w.data, dtype)] as const),
  ]);
  const weights = new OverlayWeights(model.weights, { linears: modifier.linears, vectors: modifier.vectors }, job.fusedExperts);
  const tokens = batches.reduce((n, b) => n + b.length * (b[0]?.length ?? 0), 0);
  const coverage = modifier.coverage.report(tokens, calibrateAllExperts);
  return { job: { ...job, changedWeights: { linears, tensors } }, model: model.withWeights(weights), reports: modifier.reports, timings, coverage, profile: modifier.profile, stacked: modifier.recompute };
}
