/**
 * llm-compressor's sequential pipeline, one decoder layer at a time: pass A
 * runs the layer as it is (unquantized) on every calibration batch with
 * observers in its graph, the modifier folds the statistics batch by batch
 * and then changes the layer's weights, and pass B runs the changed layer
 * again on every batch so that the next layer's inputs are the modified
 * layer's outputs (`propagate_error`). Only one layer's weights are in a
 * graph at a time; hidden states for every batch stay in host memory.
 * Activation quantization is never applied during calibration, as there.
 * llm-compressor's last subgraph holds the last layer, the final norm and
 * `lm_head`: a modifier that targets `lm_head` gets its input observed there,
 * the final norm run on the last layer's pass-A outputs (before that layer
 * changes), and finishes it with the last layer.
 */
import type { ForwardModel, HiddenBatch, TokenBatch } from '../forward/executor.js';
import { concatFloat32 } from '../dtypes.js';
import { stackBatches, unstack, type HiddenStack } from '../forward/layer-loop.js';
import { groupRuns } from '../forward/run-groups.js';
import type { Observation } from '../forward/observe.js';
import type { RawTensor } from '../runtime.js';
import type { FusedExpertsParam } from '../types.js';
import { OverlayWeights, type WeightChanges } from './overlay-weights.js';

/**
 * An algorithm plugged into the pipeline (GPTQ today; AWQ and SmoothQuant
 * fold their scales at the same point): what pass A observes, how it folds
 * statistics, and what it does to the layer between the passes.
 */
export interface LayerModifier {
  /** The statistics pass A's graphs compute. */
  readonly observe: Observation;
  /**
   * Folds the statistics of run `run` of layer `layer`: `rows` sequences
   * from `calls` calibration batches (several when runs are merged, see
   * {@link SequentialOptions.runBytes}).
   */
  collect(layer: number, run: number, rows: number, calls: number, outputs: Readonly<Record<string, RawTensor>>): void;
  /**
   * Called after pass A of `layer`: modifies the layer and returns the
   * weights it changed (Linear weights as dense `[out, in]` values, norm
   * weights as vectors), which pass B sees. `input` is the stack pass A ran
   * on, where the layer passes run stacked (see runStacked).
   */
  finishLayer(layer: number, input?: HiddenStack): Promise<WeightChanges>;
  /** The `lm_head` module the modifier targets, if any: its input (the final norm's output) is observed with the last layer, under this name. */
  readonly head?: string;
  /**
   * True when {@link finishLayer} will change the layer's weights: pass A's
   * outputs are then never read (pass B's are the next layer's inputs), and
   * pass A computes only its statistics.
   */
  changesLayer?(layer: number): boolean;
  /** Releases what the modifier kept across layers (its sessions), once the last layer is done or the run failed. */
  release?(): Promise<void>;
}

/** Wall time of one layer, split by pipeline step (milliseconds). */
export interface LayerTimings {
  readonly layer: number;
  /** Pass A: the layer graph with statistics. */
  readonly statistics: number;
  /** The modifier's work between the passes (e.g. GPTQ solves). */
  readonly modify: number;
  /** Pass B: the modified layer's outputs. */
  readonly propagate: number;
}

/** Progress and tuning of {@link runSequential}. */
export interface SequentialOptions {
  /** Bound on one graph's expert weights (bytes, float32); see `RunOptions`. */
  readonly expertGroupBytes?: number;
  readonly onLayerStart?: (layer: number, layers: number) => void;
  readonly onLayerDone?: (timings: LayerTimings, layers: number) => void;
  /**
   * Merge consecutive batches of one sequence length into graph runs of at
   * most this many bytes of activations (estimated): fewer, larger runs,
   * the same sums. Only for modifiers whose statistics do not depend on
   * batch boundaries, or depend only on the last batch's
   * ({@link lastBatchAlone}); 0 or absent runs batch by batch.
   */
  readonly runBytes?: number;
  /**
   * With merged or looped runs, pass A runs the last batch alone: its
   * statistics are then the last batch's (memoryless observers read them;
   * see `readsLastBatch`).
   */
  readonly lastBatchAlone?: boolean;
}

/**
 * Activation bytes one merged graph run may hold on CUDA (estimated, see
 * {@link sequenceBytes}). Every run returns its statistics (a 1B layer's
 * Hessians are ~180 MB) across the bus and folds them in JavaScript, so on
 * the GPU fewer, larger runs are what keeps the device busy; 8 GiB of
 * estimated activations leaves room for the layer's weights on a 24 GB card.
 */
export const CUDA_RUN_BYTES = 2 ** 33;

/** The merged-run budget of a stage: its CPU budget, or {@link CUDA_RUN_BYTES} on CUDA. */
export function runBytesFor(device: 'cpu' | 'cuda', cpuBytes: number): number {
  return device === 'cuda' ? Math.max(cpuBytes, CUDA_RUN_BYTES) : cpuBytes;
}

/** Hidden states of consecutive batches merged into runs, and how many batches each run holds. */
export interface MergedRuns {
  readonly hidden: HiddenBatch[];
  readonly calls: number[];
}

/**
 * Merges consecutive batches of equal sequence length while a run's
 * estimated activations (`perSequence(seq)` bytes per sequence) stay
 * within `budget`; a batch alone may exceed it. With `lastAlone`, the last
 * batch is never merged.
 */
export function mergeRuns(hidden: readonly HiddenBatch[], perSequence: (seq: number) => number, budget: number, lastAlone = false): MergedRuns {
  const groups = groupRuns(hidden, (b) => ({ rows: b.batch, seq: b.seq }), (rows, seq) => rows * perSequence(seq) <= budget, lastAlone);
  return {
    hidden: groups.map((g) => ({ data: concatFloat32(g.map((b) => b.data)), batch: g.reduce((n, b) => n + b.batch, 0), seq: g[0]!.seq })),
    calls: groups.map((g) => g.length),
  };
}

/** Activation bytes one sequence of `seq` tokens needs in a layer graph (attention scores, MLP or all-experts intermediates), float32. */
export function sequenceBytes(cfg: { heads: number; hidden: number; intermediate: number }, raw: Readonly<Record<string, unknown>>): (seq: number) => number {
  const num = (k: string): number => (typeof raw[k] === 'number' ? (raw[k] as number) : 0);
  const experts = num('num_experts') || num('n_routed_experts') || num('num_local_experts');
  const moeInter = num('moe_intermediate_size') || cfg.intermediate;
  const widest = Math.max(3 * cfg.intermediate, 3 * experts * moeInter, 4 * cfg.hidden);
  return (seq) => 4 * seq * (2 * cfg.heads * seq + widest + 8 * cfg.hidden);
}

/** Runs `batches` through every decoder layer of `model` with `modifier` (see the module comment); returns the per-layer timings. */
export async function runSequential(
  model: ForwardModel,
  batches: readonly TokenBatch[],
  modifier: LayerModifier,
  fused: readonly FusedExpertsParam[],
  options: SequentialOptions = {},
): Promise<LayerTimings[]> {
  try {
    return await runLayers(model, batches, modifier, fused, options);
  } finally {
    await modifier.release?.();
  }
}

async function runLayers(model: ForwardModel, batches: readonly TokenBatch[], modifier: LayerModifier, fused: readonly FusedExpertsParam[], options: SequentialOptions): Promise<LayerTimings[]> {
  const tables = model.positionTables();
  const embedded = await model.embed(batches);
  if (model.loopLayers && options.runBytes !== 0) return runStacked(model, embedded, modifier, fused, options);
  const timings: LayerTimings[] = [];
  const merged = options.runBytes ? mergeRuns(embedded, sequenceBytes(model.config, model.raw), options.runBytes, options.lastBatchAlone) : { hidden: embedded, calls: embedded.map(() => 1) };
  let hidden = merged.hidden;
  const layers = model.config.layers;
  for (let layer = 0; layer < layers; layer++) {
    options.onLayerStart?.(layer, layers);
    const t0 = performance.now();
    const head = modifier.head !== undefined && layer === layers - 1 ? modifier.head : undefined;
    // Pass A's outputs are read only where the layer stays as it is (or the head observes them): else its graph computes only the statistics.
    const keepA = head !== undefined || !(modifier.changesLayer?.(layer) ?? false);
    const a = await model.runLayer(layer, hidden, { observe: modifier.observe, expertGroupBytes: options.expertGroupBytes, keepHidden: keepA }, tables, undefined, (run, outputs) =>
      modifier.collect(layer, run, hidden[run]!.batch, merged.calls[run]!, outputs),
    );
    if (head !== undefined) {
      await model.observeHead(a.hidden, head, modifier.observe, (run, outputs) => modifier.collect(layer, run, hidden[run]!.batch, merged.calls[run]!, outputs));
    }
    const t1 = performance.now();
    const changed = await modifier.finishLayer(layer);
    const t2 = performance.now();
    const unchanged = changed.linears.size === 0 && changed.vectors.size === 0;
    if (unchanged && keepA) hidden = a.hidden;
    else {
      const weights = unchanged ? model.weights : new OverlayWeights(model.weights, changed, fused);
      hidden = (await model.runLayer(layer, hidden, { expertGroupBytes: options.expertGroupBytes }, tables, weights)).hidden;
    }
    const t = { layer, statistics: t1 - t0, modify: t2 - t1, propagate: performance.now() - t2 };
    timings.push(t);
    options.onLayerDone?.(t, layers);
  }
  return timings;
}

/** Hidden states of one looped run at most (bytes): its input, its output and the loop's copy of it stay on the device together. */
export const LOOP_RUN_BYTES = 2 ** 32;

/**
 * {@link runSequential} with every layer's passes as looped graph runs over
 * one stack of all batches (see layer-loop.ts); a layer that cannot be
 * looped runs batch by batch. Only for modifiers whose statistics do not
 * depend on batch boundaries, or only on the last batch's (`lastBatchAlone`;
 * the caller's `runBytes` is not 0).
 */
async function runStacked(model: ForwardModel, embedded: readonly HiddenBatch[], modifier: LayerModifier, fused: readonly FusedExpertsParam[], options: SequentialOptions): Promise<LayerTimings[]> {
  const tables = model.positionTables();
  const timings: LayerTimings[] = [];
  const layers = model.config.layers;
  let stack = stackBatches(embedded, model.config.hidden, model.stackDtype());
  const rowsOf = (s: HiddenStack): number => s.batches.reduce((n, b) => n + b.batch, 0);
  // A layer that cannot be looped runs as merged runs of its batches (see runBytes), then is stacked again.
  const byBatch = async (layer: number, s: HiddenStack, observe: boolean, weights = model.weights): Promise<HiddenStack> => {
    const merged = mergeRuns(unstack(s), sequenceBytes(model.config, model.raw), options.runBytes ?? 0, observe && options.lastBatchAlone);
    const sink = (run: number, outputs: Readonly<Record<string, RawTensor>>): void => modifier.collect(layer, run, merged.hidden[run]!.batch, merged.calls[run]!, outputs);
    const ran = await model.runLayer(layer, merged.hidden, { observe: observe ? modifier.observe : undefined, expertGroupBytes: options.expertGroupBytes }, tables, weights, observe ? sink : undefined);
    // Merged runs hold their batches back to back: unmerge by the stack's shapes.
    const flat = ran.hidden.length === 1 ? ran.hidden[0]!.data : concatFloat32(ran.hidden.map((h) => h.data));
    const h = model.config.hidden;
    let at = 0;
    return stackBatches(
      s.batches.map((b) => {
        const data = flat.subarray(at, at + b.batch * b.seq * h);
        at += b.batch * b.seq * h;
        return { data, batch: b.batch, seq: b.seq };
      }),
      h,
      model.stackDtype(),
    );
  };
  // A stack nothing reads any more (a layer's input, once the layer's outputs are the next stack): the next
  // outputs are copied into it, resident memory, rather than into a fresh gigabyte the copy must fault in.
  let spare: Float32Array | Uint16Array | undefined;
  const take = (): Float32Array | Uint16Array | undefined => {
    const s = spare;
    spare = undefined;
    return s;
  };
  try {
    for (let layer = 0; layer < layers; layer++) {
      options.onLayerStart?.(layer, layers);
      const t0 = performance.now();
      const observed = { observe: modifier.observe, expertGroupBytes: options.expertGroupBytes };
      const head = modifier.head !== undefined && layer === layers - 1 ? modifier.head : undefined;
      const keepA = head !== undefined || !(modifier.changesLayer?.(layer) ?? false);
      const collect = (run: number, s: HiddenStack, outputs: Readonly<Record<string, RawTensor>>): void => modifier.collect(layer, run, rowsOf(s), s.batches.length, outputs);
      const looped = await model.runLayerStacked(layer, stack, observed, tables, model.weights, keepA, LOOP_RUN_BYTES, collect, keepA ? take() : undefined, options.lastBatchAlone);
      // Pass A's outputs, where they came back.
      const a = looped === null ? await byBatch(layer, stack, true) : keepA ? looped : null;
      if (head !== undefined && a) {
        const last = unstack(a);
        await model.observeHead(last, head, modifier.observe, (run, outputs) => modifier.collect(layer, run, last[run]!.batch, 1, outputs));
      }
      const t1 = performance.now();
      const changed = await modifier.finishLayer(layer, stack);
      const t2 = performance.now();
      const unchanged = changed.linears.size === 0 && changed.vectors.size === 0;
      const input = stack;
      if (unchanged && a) stack = a;
      else {
        const weights = unchanged ? model.weights : new OverlayWeights(model.weights, changed, fused);
        stack = (await model.runLayerStacked(layer, stack, { expertGroupBytes: options.expertGroupBytes }, tables, weights, true, LOOP_RUN_BYTES, undefined, take())) ?? (await byBatch(layer, stack, false, weights));
      }
      if (stack.data !== input.data) spare = input.data;
      const t = { layer, statistics: t1 - t0, modify: t2 - t1, propagate: performance.now() - t2 };
      timings.push(t);
      options.onLayerDone?.(t, layers);
    }
  } finally {
    // The sessions that served every layer.
    await model.releaseRuntimes();
  }
  return timings;
}
