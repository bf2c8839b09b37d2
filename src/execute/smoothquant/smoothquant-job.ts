/**
 * The SmoothQuant stage of `apply`: its own full sequential pass (as
 * llm-compressor's independent pipeline runs each modifier), after which
 * the next stage (GPTQ, calibration, or the weight pass) works on the
 * smoothed model: the forward model reads the smoothed weights, and the
 * job carries them in their stored dtype for the weight pass.
 */
import { storedBytes } from '../dtypes.js';
import type { ForwardModel, TokenBatch } from '../forward/executor.js';
import { NO_CHANGES, OverlayWeights } from '../pipeline/overlay-weights.js';
import { runBytesFor, runSequential, type SequentialOptions } from '../pipeline/sequential.js';
import type { ApplyJob } from '../types.js';
import type { StageRun } from '../pipeline/stage-run.js';
import { SmoothQuantModifier, type SmoothReport } from './smoothquant-modifier.js';

/** A SmoothQuant run: the job and model the next stage continues with, and what was smoothed. */
export type SmoothRun = StageRun<SmoothReport>;

/** Smooths `job`'s model (the job carries `smoothquant`) on `batches`. */
export async function smoothJob(job: ApplyJob, model: ForwardModel, batches: readonly TokenBatch[], options: SequentialOptions = {}): Promise<SmoothRun> {
  const spec = job.smoothquant!;
  // Balance layers are read under the plan's names, whatever the checkpoint calls them (fused experts of gpt-oss, Llama 4 and GraniteMoE; Mixtral/PhiMoE's w1/w3/w2).
  const reader = new OverlayWeights(model.weights, NO_CHANGES, job.fusedExperts);
  const modifier = new SmoothQuantModifier(reader, spec.mappings, spec.strength, job.calibration?.calibrateAllExperts ?? true, new Set(job.offsetNorms ?? []));
  // Per-channel min/max merge across runs exactly, so batches may share a graph run.
  const timings = await runSequential(model, batches, modifier, job.fusedExperts, { runBytes: runBytesFor(model.device, 1 << 30), ...options });
  const dtype = model.config.dtype;
  const linears = new Map([...modifier.linears].map(([name, w]) => [name, storedBytes(w.data, dtype)] as const));
  const tensors = new Map([...modifier.vectors].map(([name, v]) => [name, storedBytes(v, dtype)] as const));
  const weights = new OverlayWeights(model.weights, { linears: modifier.linears, vectors: modifier.vectors }, job.fusedExperts);
  const tokens = batches.reduce((n, b) => n + b.length * (b[0]?.length ?? 0), 0);
  const coverage = modifier.coverage.report(tokens, job.calibration?.calibrateAllExperts ?? true);
  return { job: { ...job, changedWeights: { linears, tensors } }, model: model.withWeights(weights), reports: modifier.reports, timings, coverage };
}
