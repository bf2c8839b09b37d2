/**
 * The layer-by-layer forward executor. Calibration batches move through the
 * model one decoder layer at a time, as llm-compressor's sequential pipeline
 * does: a layer's graph (its weights as initializers) is built, run on every
 * batch, then released before the next layer's weights are read, so only one
 * layer is resident while hidden states for all batches flow on.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GraphRuntime, type Device, type RawTensor } from '../runtime.js';
import { openCheckpoint } from '../safetensors-reader.js';
import { readDecoderConfig, UnsupportedModelError, windowOf, type DecoderConfig } from './decoder-config.js';
import { headGraph, headSliceRows, type HeadOutput } from './head.js';
import { layerBuilderFor, type LayerBuilder } from './architectures.js';
import type { ExpertGroups } from './moe.js';
import type { ExpertObservation } from './observe.js';
import { ropeTables } from './rope.js';
import { WeightReader } from './weights.js';

/** One batch of equal-length token sequences, `[B][T]`. */
export type TokenBatch = readonly (readonly number[])[];

/** Hidden states of one batch: `[B, T, H]` row-major. */
export interface HiddenBatch {
  readonly data: Float32Array;
  readonly batch: number;
  readonly seq: number;
}

/** Called after a layer ran on a batch (per-layer outputs, layer statistics). */
export type LayerObserver = (layer: number, batchIndex: number, hidden: HiddenBatch, extra: Readonly<Record<string, RawTensor>>) => void;

/** Options of {@link ForwardModel.run}. */
export interface RunOptions {
  readonly onLayer?: LayerObserver;
  /** Called when a layer's graph is built and about to run (progress). */
  readonly onLayerStart?: (layer: number, layers: number) => void;
  /** Build the graphs with input observers (`min:`/`max:` outputs, see observe.ts), experts observing all or routed tokens. */
  readonly observe?: ExpertObservation;
  /** Bound on one graph's expert weights (bytes, float32; default 1 GiB): larger MoE blocks run their experts in groups. */
  readonly expertGroupBytes?: number;
}

const MASK_MIN = -3.4028234663852886e38;

/** Additive mask: position i sees j ≤ i, and only the last `window` of them when set. */
export function causalMask(seq: number, window: number | null = null): Float32Array {
  const m = new Float32Array(seq * seq);
  for (let i = 0; i < seq; i++) for (let j = 0; j < seq; j++) if (j > i || (window !== null && i - j >= window)) m[i * seq + j] = MASK_MIN;
  return m;
}

function f32(data: Float32Array, dims: readonly number[]): RawTensor {
  return { type: 'float32', data, dims };
}

/** A model folder opened for forward passes. */
export class ForwardModel {
  private constructor(
    readonly config: DecoderConfig,
    readonly raw: Readonly<Record<string, unknown>>,
    readonly weights: WeightReader,
    readonly device: Device,
    private readonly layerBuilder: LayerBuilder,
  ) {}

  /** Opens `dir` (config.json + safetensors); throws {@link UnsupportedModelError} for an architecture it cannot run. */
  static async open(dir: string, device: Device = 'cpu'): Promise<ForwardModel> {
    const raw = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const layerBuilder = layerBuilderFor(raw);
    const config = readDecoderConfig(raw);
    const index = await openCheckpoint(dir);
    return new ForwardModel(config, raw, new WeightReader(index, config.dtype), device, layerBuilder);
  }

  /** Token embeddings of each batch. */
  async embed(batches: readonly TokenBatch[]): Promise<HiddenBatch[]> {
    const table = await this.weights.rowReader('model.embed_tokens.weight');
    const h = this.config.hidden;
    return batches.map((b) => {
      const seq = b[0]?.length ?? 0;
      const data = new Float32Array(b.length * seq * h);
      b.forEach((row, i) =>
        row.forEach((tok, t) => {
          if (!Number.isInteger(tok) || tok < 0 || tok >= table.rows) throw new RangeError(`token id ${tok} is outside the vocabulary (0..${table.rows - 1})`);
          data.set(table.row(tok), (i * seq + t) * h);
        }),
      );
      return { data, batch: b.length, seq };
    });
  }

  /** Runs every decoder layer on every batch, layer-major; returns the last layer's outputs. */
  async layers(hidden: HiddenBatch[], options: RunOptions = {}): Promise<HiddenBatch[]> {
    const tables = new Map<string, { cos: RawTensor; sin: RawTensor; mask: RawTensor }>();
    const inputsFor = (seq: number, window: number | null): { cos: RawTensor; sin: RawTensor; mask: RawTensor } => {
      let t = tables.get(`${seq}/${window}`);
      if (!t) {
        const r = ropeTables(this.config.rope, seq);
        t = { cos: f32(r.cos, [seq, r.dim]), sin: f32(r.sin, [seq, r.dim]), mask: f32(causalMask(seq, window), [seq, seq]) };
        tables.set(`${seq}/${window}`, t);
      }
      return t;
    };
    let current = hidden;
    for (let layer = 0; layer < this.config.layers; layer++) {
      options.onLayerStart?.(layer, this.config.layers);
      const program = await this.layerBuilder(this.weights, this.config, layer, this.raw, { observe: options.observe, expertGroupBytes: options.expertGroupBytes });
      const next: HiddenBatch[] = [];
      const extras: Record<string, RawTensor>[] = [];
      const runtime = new GraphRuntime(this.device);
      try {
        for (let i = 0; i < current.length; i++) {
          const b = current[i]!;
          const { out, ...extra } = await runtime.run(`layer_${layer}`, () => program.graph, {
            hidden: f32(b.data, [b.batch, b.seq, this.config.hidden]),
            ...inputsFor(b.seq, windowOf(this.config, layer)),
          });
          next.push({ data: out!.data as Float32Array, batch: b.batch, seq: b.seq });
          extras.push(extra);
        }
      } finally {
        await runtime.dispose();
      }
      if (program.expertGroups) await this.runExpertGroups(program.expertGroups, next, extras);
      next.forEach((h, i) => options.onLayer?.(layer, i, h, extras[i]!));
      current = next;
    }
    return current;
  }

  /**
   * Runs the expert groups of an MoE layer on every batch, one group's
   * weights at a time, adding each group's partial output to the layer
   * output and its observer outputs to the batch's extras.
   */
  private async runExpertGroups(groups: ExpertGroups, hidden: HiddenBatch[], extras: Record<string, RawTensor>[]): Promise<void> {
    for (let start = 0; start < groups.experts; start += groups.groupSize) {
      const count = Math.min(groups.groupSize, groups.experts - start);
      const bytes = await groups.build(start, count);
      const runtime = new GraphRuntime(this.device);
      try {
        for (let i = 0; i < hidden.length; i++) {
          const extra = extras[i]!;
          const input = extra.moe_in!;
          const tokens = input.dims[0]!;
          const columns = (t: RawTensor): RawTensor => {
            const all = t.dims[1]!;
            const src = t.data as Float32Array;
            const data = new Float32Array(tokens * count);
            for (let n = 0; n < tokens; n++) data.set(src.subarray(n * all + start, n * all + start + count), n * count);
            return f32(data, [tokens, count]);
          };
          const { partial, ...observed } = await runtime.run(`experts_${start}`, () => bytes, {
            moe_in: input,
            moe_weights: columns(extra.moe_weights!),
            moe_mask: columns(extra.moe_mask!),
          });
          const out = hidden[i]!.data;
          const add = partial!.data as Float32Array;
          for (let j = 0; j < out.length; j++) out[j]! += add[j]!;
          Object.assign(extra, observed);
        }
      } finally {
        await runtime.dispose();
      }
    }
    for (const extra of extras) {
      delete extra.moe_in;
      delete extra.moe_weights;
      delete extra.moe_mask;
    }
  }

  /**
   * Runs the head on each batch: logits `[B, T, V]`, or per-position NLL
   * `[B, T]` of `targets`. The vocabulary is split into slices of at most
   * `sliceBytes` of float32 `lm_head` rows, one slice resident at a time;
   * NLL combines the slices' log-sum-exps.
   */
  async head(hidden: HiddenBatch[], output: HeadOutput, targets?: readonly TokenBatch[], sliceBytes?: number): Promise<Float32Array[]> {
    const vocab = this.config.vocabSize;
    const rows = headSliceRows(this.config, sliceBytes);
    const sizes = hidden.map((b) => b.batch * b.seq);
    const logits = output === 'logits' ? sizes.map((n) => new Float32Array(n * vocab)) : [];
    const lse = sizes.map((n) => new Float64Array(n).fill(-Infinity));
    const picked = sizes.map((n) => new Float64Array(n));
    for (let start = 0; start < vocab; start += rows) {
      const count = Math.min(rows, vocab - start);
      const bytes = await headGraph(this.weights, this.config, output, start, count);
      const runtime = new GraphRuntime(this.device);
      try {
        for (let i = 0; i < hidden.length; i++) {
          const b = hidden[i]!;
          const feeds: Record<string, RawTensor> = { hidden: f32(b.data, [b.batch, b.seq, this.config.hidden]) };
          if (output === 'nll') feeds.targets = { type: 'int64', data: BigInt64Array.from(targets![i]!.flat(), (x) => BigInt(x)), dims: [b.batch, b.seq] };
          const result = await runtime.run(`head_${start}`, () => bytes, feeds);
          if (output === 'logits') {
            const part = result.logits!.data as Float32Array;
            for (let n = 0; n < sizes[i]!; n++) logits[i]!.set(part.subarray(n * count, (n + 1) * count), n * vocab + start);
          } else {
            const l = result.lse!.data as Float32Array;
            const p = result.picked!.data as Float32Array;
            for (let n = 0; n < sizes[i]!; n++) {
              const a = lse[i]![n]!;
              const m = Math.max(a, l[n]!);
              lse[i]![n] = m + Math.log(Math.exp(a - m) + Math.exp(l[n]! - m));
              picked[i]![n]! += p[n]!;
            }
          }
        }
      } finally {
        await runtime.dispose();
      }
    }
    if (output === 'logits') return logits;
    return lse.map((l, i) => Float32Array.from(l, (v, n) => v - picked[i]![n]!));
  }
}

export { UnsupportedModelError };
