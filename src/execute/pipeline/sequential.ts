/**
 * llm-compressor's sequential pipeline, one decoder layer at a time: pass A
 * runs the layer as it is (unquantized) on every calibration batch with
 * observers in its graph, the modifier folds the statistics batch by batch
 * and then changes the layer's weights, and pass B runs the changed layer
 * again on every batch so that the next layer's inputs are the modified
 * layer's outputs (`propagate_error`). Only one layer's weights are in a
 * graph at a time; hidden states for every batch stay in host memory.
 * Activation quantization is never applied during calibration, as there.
 */
import type { DenseMatrix } from '../forward/dequantize.js';
import type { ForwardModel, HiddenBatch, TokenBatch } from '../forward/executor.js';
import type { Observation } from '../forward/observe.js';
import type { RawTensor } from '../runtime.js';
import type { FusedExpertsParam } from '../types.js';
import { OverlayWeights } from './overlay-weights.js';

/**
 * An algorithm plugged into the pipeline (GPTQ today; AWQ and SmoothQuant
 * fold their scales at the same point): what pass A observes, how it folds
 * statistics, and what it does to the layer between the passes.
 */
export interface LayerModifier {
  /** The statistics pass A's graphs compute. */
  readonly observe: Observation;
  /** Folds the statistics of batch `batch` (with `rows` sequences) of layer `layer`. */
  collect(layer: number, batch: number, rows: number, outputs: Readonly<Record<string, RawTensor>>): void;
  /**
   * Called after pass A of `layer`: modifies the layer and returns the
   * Linear weights it replaced (module → dense `[out, in]` values), which
   * pass B and every later reader of those modules see.
   */
  finishLayer(layer: number): Promise<ReadonlyMap<string, DenseMatrix>>;
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
}

/** Runs `batches` through every decoder layer of `model` with `modifier` (see the module comment); returns the per-layer timings. */
export async function runSequential(
  model: ForwardModel,
  batches: readonly TokenBatch[],
  modifier: LayerModifier,
  fused: readonly FusedExpertsParam[],
  options: SequentialOptions = {},
): Promise<LayerTimings[]> {
  const tables = model.positionTables();
  const timings: LayerTimings[] = [];
  let hidden: HiddenBatch[] = await model.embed(batches);
  const layers = model.config.layers;
  for (let layer = 0; layer < layers; layer++) {
    options.onLayerStart?.(layer, layers);
    const t0 = performance.now();
    const a = await model.runLayer(layer, hidden, { observe: modifier.observe, expertGroupBytes: options.expertGroupBytes }, tables, undefined, (batch, outputs) =>
      modifier.collect(layer, batch, hidden[batch]!.batch, outputs),
    );
    const t1 = performance.now();
    const changed = await modifier.finishLayer(layer);
    const t2 = performance.now();
    if (changed.size === 0) hidden = a.hidden;
    else {
      const weights = new OverlayWeights(model.weights, changed, fused);
      hidden = (await model.runLayer(layer, hidden, { expertGroupBytes: options.expertGroupBytes }, tables, weights)).hidden;
    }
    const t = { layer, statistics: t1 - t0, modify: t2 - t1, propagate: performance.now() - t2 };
    timings.push(t);
    options.onLayerDone?.(t, layers);
  }
  return timings;
}
