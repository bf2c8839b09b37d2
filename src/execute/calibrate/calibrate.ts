/**
 * A calibration run: token windows go through the model layer by layer with
 * input observers in the graphs; the result is each Linear input's running
 * min/max and the expert coverage of every MoE layer.
 */
import type { ForwardModel, RunOptions, TokenBatch } from '../forward/executor.js';
import { parseObserverOutput, type ExpertObservation, type ObserveOption } from '../forward/observe.js';
import { LastBatchMinMax, StaticMinMax, type MinMax } from './observers.js';
import { CoverageCollector, type ExpertCoverage } from './coverage.js';
import { MAX_RESIDENT_ACTIVATION_BYTES } from './resident.js';
import { groupRuns } from '../forward/run-groups.js';

/** What a calibration run measured. */
export interface CalibrationResult {
  /**
   * Running min/max (`static_minmax`) of each Linear module's input, keyed by
   * module, and of each attention's cached states, keyed
   * `<attention>.key_states` / `<attention>.value_states`.
   */
  readonly inputs: ReadonlyMap<string, MinMax>;
  /**
   * The same statistics over the last batch only (`memoryless_minmax`);
   * empty where the caller did not ask for them ({@link CalibrateOptions.lastBatchAlone}).
   */
  readonly lastBatch: ReadonlyMap<string, MinMax>;
  readonly coverage: ExpertCoverage;
}

/** Progress and memory settings of {@link calibrate}. */
export interface CalibrateOptions {
  /** Called when a layer's graph is built and about to run (progress). */
  readonly onLayerStart?: (layer: number, layers: number) => void;
  /** Hidden states kept between layers, at most (bytes); longer data runs in chunks of batches (see perplexity.ts). */
  readonly maxResidentBytes?: number;
  /**
   * The modules whose inputs are observed (Linear modules by name,
   * `<attention>.key_states` / `.value_states` for a quantized KV cache);
   * every one when unset. Experts are always observed: their statistics come
   * with the routing counts coverage needs.
   */
  readonly observes?: (module: string) => boolean;
  /**
   * The modules whose input range is read only as `max(|min|, |max|)`
   * (symmetric static schemes); where every module of an input is one, its
   * statistics are `min = −absmax`, `max = absmax`, taken with one reduction
   * instead of two. Every input keeps its true min and max when unset.
   */
  readonly absmax?: (module: string) => boolean;
  /**
   * Consecutive batches of one sequence length run as one graph run of at
   * most this many tokens (a batch alone may hold more; the last batch
   * runs alone unless {@link lastBatchAlone} is false): fewer, larger runs, so that what a run costs the
   * host (onnxruntime launching each operator, the feeds and statistics
   * crossing the bus) is paid once for several sequences. The running
   * statistics and the expert coverage are the same up to float order, and
   * so are the last-batch statistics of every module the last batch reaches;
   * a module it does not reach (an expert routed to, not run on every token)
   * keeps those of the last joined run it was in, so a caller reading them
   * for such experts leaves this unset. Unset: one run per batch.
   */
  readonly runTokens?: number;
  /**
   * Whether joined runs leave the last batch in a run of its own, so that
   * {@link CalibrationResult.lastBatch} holds its statistics (default true).
   * A caller that reads only the running statistics sets it false: every run
   * then has the same shape (128 sequences in runs of four are 32 runs, not
   * 31, one of three and one of one), and the last-batch statistics come
   * back empty.
   */
  readonly lastBatchAlone?: boolean;
}

/**
 * Tokens one calibration run holds at most on CUDA
 * ({@link CalibrateOptions.runTokens}, `joinedRunTokens`): four sequences of
 * 2048. On an H200, 128 sequences of a 22-layer 1B llama ran in 2.2 s as 33
 * runs against 2.5 s as 128.
 */
export const CUDA_RUN_TOKENS = 8192;

/**
 * `batches` with consecutive ones of equal sequence length joined while a
 * joined batch holds at most `tokens` tokens; the last batch stays alone
 * unless `lastAlone` is false.
 */
export function joinBatches(batches: readonly TokenBatch[], tokens: number, lastAlone = true): TokenBatch[] {
  return groupRuns(batches, (b) => ({ rows: b.length, seq: b[0]?.length ?? 0 }), (rows, seq) => rows * seq <= tokens, lastAlone).map((g) => (g.length === 1 ? g[0]! : g.flat()));
}

/**
 * Runs `batches` through `model` with observers; experts see all tokens
 * unless `calibrateAllExperts` is false. `expertGroupBytes` bounds the expert
 * weights of one graph (see {@link RunOptions}). Batches beyond the resident
 * bound run as chunks, each through every layer, in order, so the running
 * and last-batch statistics are those of one pass over all batches.
 */
export async function calibrate(
  model: ForwardModel,
  batches: readonly TokenBatch[],
  calibrateAllExperts = true,
  expertGroupBytes?: number,
  options: CalibrateOptions = {},
): Promise<CalibrationResult> {
  const experts: ExpertObservation = calibrateAllExperts ? 'all' : 'routed';
  const observe: ObserveOption = options.observes || options.absmax ? { experts, hessians: false, observes: options.observes, absmax: options.absmax } : experts;
  const stats = new StaticMinMax();
  const last = new LastBatchMinMax();
  const coverage = new CoverageCollector();
  const tokens = batches.reduce((n, b) => n + b.length * (b[0]?.length ?? 0), 0);
  const lastAlone = options.lastBatchAlone !== false;
  const runs = options.runTokens === undefined ? batches : joinBatches(batches, options.runTokens, lastAlone);
  const largest = Math.max(1, ...runs.map((b) => b.length * (b[0]?.length ?? 0)));
  const chunk = Math.max(1, Math.floor((options.maxResidentBytes ?? MAX_RESIDENT_ACTIVATION_BYTES) / (largest * model.config.hidden * 4)));
  for (let start = 0; start < runs.length; start += chunk) {
    await model.layers(await model.embed(runs.slice(start, start + chunk)), {
      observe,
      expertGroupBytes,
      keepHidden: false,
      onLayerStart: options.onLayerStart,
      onLayer: (layer, batch, _hidden, extra) => {
        for (const [name, t] of Object.entries(extra)) {
          for (const v of parseObserverOutput(name, t.data as Float32Array)) {
            stats.add(v);
            if (lastAlone) last.add(v, start + batch);
          }
        }
        coverage.add(layer, extra);
      },
    });
  }
  return { inputs: stats.stats, lastBatch: last.stats, coverage: coverage.report(tokens, calibrateAllExperts) };
}
