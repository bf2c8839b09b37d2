/**
 * The GPTQ stage of `apply`: runs the sequential pipeline with the GPTQ
 * modifier, applies the expert coverage policy layer by layer (an
 * under-covered expert stops the run as soon as its layer has been seen, or
 * is rounded to nearest), and returns the job with its solved weights and
 * calibrated tensors.
 */
import { completeCalibration, coverageErrorMessage, DTYPES, ExpertCoverageError, joinsBatches, readsLastBatch, type CalibratedJob } from '../calibrate/calibrate-job.js';
import { expertKey, lowCoverage } from '../calibrate/expert-coverage.js';
import type { ForwardModel, TokenBatch } from '../forward/executor.js';
import { runBytesFor, runSequential, type LayerTimings, type SequentialOptions } from '../pipeline/sequential.js';
import type { ApplyJob } from '../types.js';
import { GraphRuntime } from '../runtime.js';
import { runtimeGemm } from './gemm.js';
import { GraphSolver, solveMode } from './graph-solve.js';
import { GptqModifier, type GptqModuleReport } from './gptq-modifier.js';

/** Activations one merged graph run may hold (estimated); see `SequentialOptions.runBytes`. */
const RUN_BYTES = 1 << 30;

/** A GPTQ run's job and what it did. */
export interface GptqRun extends CalibratedJob {
  readonly reports: readonly GptqModuleReport[];
  /** Distinct Hessians accumulated (one per distinct input). */
  readonly hessians: number;
  readonly timings: readonly LayerTimings[];
}

/** Runs GPTQ for `job` (which carries `gptq` and `calibration`) on `batches`. */
export async function gptqJob(job: ApplyJob, model: ForwardModel, batches: readonly TokenBatch[], options: SequentialOptions = {}): Promise<GptqRun> {
  const spec = job.calibration!;
  const gptq = job.gptq!;
  const tokens = batches.reduce((n, b) => n + b.length * (b[0]?.length ?? 0), 0);
  const rt = new GraphRuntime(model.device);
  // The solves run on the first of the model's devices.
  rt.deviceId = model.deviceIds?.[0];
  const modifier = new GptqModifier(job, model.weights, gptq.modules, spec.calibrateAllExperts, {
    gemm: runtimeGemm(rt),
    graph: solveMode() === 'graph' ? new GraphSolver(rt) : undefined,
    layers: model.config.layers,
    blockSize: gptq.blockSize,
    dampeningFrac: gptq.dampeningFrac,
    rtnExperts: (layer, coverage) => {
      const low = lowCoverage(coverage.report(tokens, spec.calibrateAllExperts), spec.minExpertTokens).filter((e) => e.layer === layer);
      if (low.length > 0 && spec.onLowCoverage === 'error') throw new ExpertCoverageError(low, coverageErrorMessage(low, spec));
      // "warning" keeps what an expert saw; one that saw nothing has no Hessian and is rounded to nearest.
      return new Set((spec.onLowCoverage === 'fallback' ? low : low.filter((e) => e.tokens === 0)).map(expertKey));
    },
  });
  let timings: LayerTimings[];
  try {
    // Statistics of the last batch alone (memoryless observers, a calibrated KV cache): it runs alone, the others merged or
    // looped; batch by batch only where an expert the last batch does not reach would read them.
    timings = await runSequential(model, batches, modifier, job.fusedExperts, { runBytes: joinsBatches(job) ? runBytesFor(model.device, RUN_BYTES) : 0, lastBatchAlone: readsLastBatch(job), ...options });
  } finally {
    await rt.dispose();
  }
  const result = { inputs: modifier.stats.stats, lastBatch: modifier.lastBatch.stats, coverage: modifier.coverage.report(tokens, spec.calibrateAllExperts) };
  const done = completeCalibration({ ...job, solvedWeights: modifier.solved }, result, DTYPES[model.config.dtype]);
  return { ...done, reports: modifier.reports, hessians: modifier.hessians, timings };
}
