/**
 * What a smoothing stage (SmoothQuant, AWQ) hands to the next stage of
 * `apply`: the job and model to continue with, and what it did.
 */
import type { ExpertCoverage } from '../calibrate/coverage.js';
import type { ForwardModel } from '../forward/executor.js';
import type { ApplyJob } from '../types.js';
import type { LayerTimings } from './sequential.js';

/** A stage's run, with its per-mapping reports `R`. */
export interface StageRun<R> {
  readonly job: ApplyJob;
  readonly model: ForwardModel;
  readonly reports: readonly R[];
  readonly timings: readonly LayerTimings[];
  /** Tokens routed to each expert during the pass. */
  readonly coverage: ExpertCoverage;
}
