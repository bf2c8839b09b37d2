/**
 * The layer-by-layer forward executor. Calibration batches move through the
 * model one decoder layer at a time, as llm-compressor's sequential pipeline
 * does: a layer's graph (its weights as initializers) is built, run on every
 * batch, then released before the next layer's weights are read, so only one
 * layer is resident while hidden states for all batches flow on.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GraphRuntime, graphWeightMegabytes, type Device, type Feed, type RawTensor, type RuntimeTimings } from '../runtime.js';
import { openCheckpoint } from '../safetensors-reader.js';
import { LLAMA_LIKE, readDecoderConfig, UnsupportedModelError, windowDroppedInCalibration, windowOf, type DecoderConfig } from './decoder-config.js';
import { headGraph, headObserverGraph, headSliceRows, type HeadOutput } from './head.js';
import { layerBuilderFor, type LayerBuilder } from './architectures.js';
import { DELTA_CHUNK } from './gated-delta-net.js';
import { positionInputs, sharedLengths, type LayerProgram } from './llama-layer.js';
import { EXPERT_GROUP_BYTES, type ExpertGroups } from './moe.js';
import { GraphBuilder, OnnxType, WeightFeeds, type FileBytes, type ModelBytes, type OnnxElemType } from '../onnx/graph-builder.js';
import { ByteArena } from '../onnx/proto-writer.js';
import { feedTensors, structureKey } from './fed-weights.js';
import { finishPackedMinMax, packMinMax, unpackMinMax, type JoinedObserver, type Observation, type ObserveOption } from './observe.js';
import { ropeTables } from './rope.js';
import { startDeviceWorker, type DeviceWorkerRuntime, type GraphRunner } from '../device-workers.js';
import { CUDA_RUN_BYTES, sequenceBytes } from '../pipeline/sequential.js';
import { concatStackData, groupSlots, LOOP_SLOT_TOKENS, loopedLayer, loopFeeds, narrowed, outputInto, shareStack, slotGroup, splitStack, stackType, widened, type BuildInto, type HiddenStack, type LoopedLayer, type StackDtype } from './layer-loop.js';
import { toFloat32 } from '../dtypes.js';
import { resolvePrecision, roundTo, type Precision, type ResolvedPrecision } from './precision.js';
import { CAUSAL_LM_NAMES, WeightReader, type LanguageModelNames } from './weights.js';
import { VISION_LANGUAGE, visionLanguageText } from '../../model/architectures/vision-language.js';

/** One batch of equal-length token sequences, `[B][T]`. */
export type TokenBatch = readonly (readonly number[])[];

/** Hidden states of one batch: `[B, T, H]` row-major. */
export interface HiddenBatch {
  readonly data: Float32Array;
  readonly batch: number;
  readonly seq: number;
  /**
   * The same states as 16-bit elements of the model's low dtype, as a graph
   * of several layers returns them when the model computes in bf16/fp16
   * (half the bytes over the bus, and the next such graph takes them as they
   * are); `data` then decodes them when first read.
   */
  readonly stored?: { readonly dtype: 'bfloat16' | 'float16'; readonly data: Uint16Array };
  /**
   * The token ids whose embedding rows these states are, where they are the
   * embedding table's rows as stored ({@link ForwardModel.embed}): a graph
   * of the first layers may look the rows up itself.
   */
  readonly tokens?: TokenBatch;
  /**
   * Writes the {@link stored} elements into `to` from element `at`, where
   * they are made on first read: made there directly, with no array of
   * their own (a stack of every batch is filled so).
   */
  readonly storeInto?: (to: Uint16Array, at: number) => void;
}

/** Token ids embedded as the table's stored rows, gathered when first read ({@link storedBatch}). */
function embeddedBatch(dtype: 'bfloat16' | 'float16', table: Uint16Array, tokens: TokenBatch, hidden: number): HiddenBatch {
  const seq = tokens[0]?.length ?? 0;
  const gatherInto = (to: Uint16Array, at: number): void =>
    tokens.forEach((row, i) => row.forEach((tok, t) => to.set(table.subarray(tok * hidden, (tok + 1) * hidden), at + (i * seq + t) * hidden)));
  const gather = (): Uint16Array => {
    const bits = new Uint16Array(tokens.length * seq * hidden);
    gatherInto(bits, 0);
    return bits;
  };
  return storedBatch(dtype, gather, tokens.length, seq, tokens, gatherInto);
}

/** A batch's token ids as an int64 `[batch, seq]` tensor. */
function tokenIds(tokens: TokenBatch): RawTensor {
  const seq = tokens[0]?.length ?? 0;
  const data = new BigInt64Array(tokens.length * seq);
  tokens.forEach((row, i) => row.forEach((tok, t) => (data[i * seq + t] = BigInt(tok))));
  return { type: 'int64', data, dims: [tokens.length, seq] };
}

/**
 * A batch held as 16-bit elements (or made by `bits` when first read), its
 * float32 `data` decoded on first read.
 */
function storedBatch(dtype: 'bfloat16' | 'float16', bits: Uint16Array | (() => Uint16Array), batch: number, seq: number, tokens?: TokenBatch, makeInto?: (to: Uint16Array, at: number) => void): HiddenBatch {
  let made = typeof bits === 'function' ? undefined : bits;
  const read = (): Uint16Array => (made ??= (bits as () => Uint16Array)());
  let values: Float32Array | undefined;
  return {
    batch,
    seq,
    ...(tokens ? { tokens } : {}),
    ...(makeInto ? { storeInto: (to: Uint16Array, at: number): void => (made ? to.set(made, at) : makeInto(to, at)) } : {}),
    // The dtype is read without making the elements (a stack checks it before filling itself through storeInto).
    get stored() {
      return {
        dtype,
        get data() {
          return read();
        },
      };
    },
    get data(): Float32Array {
      const b = read();
      values ??= toFloat32(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), dtype === 'bfloat16' ? 'BF16' : 'F16');
      return values;
    },
  };
}

/** Called after a layer ran on a batch (per-layer outputs, layer statistics). */
export type LayerObserver = (layer: number, batchIndex: number, hidden: HiddenBatch, extra: Readonly<Record<string, RawTensor>>) => void;

/** Where a forward pass spends its time (milliseconds; profiling). */
export interface ForwardTimings extends RuntimeTimings {
  /** Building layer graphs: reading and widening weights, writing the ONNX bytes. */
  build: number;
}

/** Options of {@link ForwardModel.layers}. */
export interface RunOptions {
  readonly onLayer?: LayerObserver;
  /** Called when a layer's graph is built and about to run (progress). */
  readonly onLayerStart?: (layer: number, layers: number) => void;
  /** Build the graphs with input observers (`min:`/`max:` outputs, see observe.ts), experts observing all or routed tokens. */
  readonly observe?: ObserveOption;
  /** Bound on one graph's expert weights (bytes, float32; default 1 GiB): larger MoE blocks run their experts in groups. */
  readonly expertGroupBytes?: number;
  /**
   * Whether the last layer's hidden states come back (default true). A
   * caller that reads only statistics (calibration) sets it false, and the
   * last graph of several layers then returns none: one copy of every
   * batch's states less over the bus (the returned batches hold no data).
   */
  readonly keepHidden?: boolean;
}

/**
 * The position inputs of a layer graph: RoPE tables and the additive causal
 * mask, `[seq, seq]` floats made only when a graph reads it (a graph whose
 * attention is fused does not: at 32k tokens the mask would be 4 GiB).
 */
export interface PositionTables {
  readonly cos: RawTensor;
  readonly sin: RawTensor;
  readonly mask: Feed;
  /** `0 … ⌈seq/64⌉ − 1` for a gated DeltaNet's chunks (llama-layer.ts: LayerInputs.chunks). */
  readonly delta_chunks: Feed;
}

/** The position inputs of a layer graph for a sequence length and attention window. */
export type LayerInputsFor = (seq: number, window: number | null) => PositionTables;

/**
 * Receives a layer graph's extra outputs (observer statistics) of batch
 * `batch` as they come, so that large statistics (Hessians) are folded
 * batch by batch instead of kept for every batch.
 */
export type OutputSink = (batch: number, outputs: Readonly<Record<string, RawTensor>>) => void;

const EXPERT_INPUTS = new Set(['moe_in', 'moe_weights', 'moe_mask', 'moe_shared']);

/** Hands `extra` to `sink`, keeping only the expert-group inputs the executor still needs. */
function keepExpertInputs(extra: Record<string, RawTensor>, sink: (outputs: Record<string, RawTensor>) => void): Record<string, RawTensor> {
  const kept: Record<string, RawTensor> = {};
  const given: Record<string, RawTensor> = {};
  for (const [name, t] of Object.entries(extra)) (EXPERT_INPUTS.has(name) ? kept : given)[name] = t;
  sink(given);
  return kept;
}

/** Default {@link ForwardModel.graphWeightBytes} on CUDA: 2 GiB of float32 weights (1 GiB as bf16, half the protobuf limit of one graph). */
export const CUDA_GRAPH_WEIGHT_BYTES = 2 ** 31;

/** Sessions of fed layer graphs kept per device: a pass with observers and one without, for up to two layer shapes (a dense first layer, MoE layers). */
const FED_SESSIONS = 4;

/**
 * MoE families whose layers (experts inside the layer graph) may share a
 * graph, sized by the checkpoint's tensors: softmax-routed (softmax-moe-layer.ts),
 * sigmoid-routed MLA/GLM (mla-layer.ts), GraniteMoE and PhiMoE
 * (block-sparse-moe-layer.ts), Qwen3-Next, GLM-5 (DSA), gpt-oss and Llama 4.
 */
const GROUPED_MOE: ReadonlySet<string> = new Set(['qwen3_moe', 'qwen2_moe', 'mixtral', 'olmoe', 'deepseek_v3', 'kimi_k2', 'glm4_moe', 'glm4_moe_lite', 'granitemoe', 'phimoe', 'qwen3_next', 'glm_moe_dsa', 'gpt_oss', 'llama4_text']);

/** What a checkpoint's decoder-layer tensors hold, for sizing graphs of several layers. */
interface LayerTensors {
  /** Whether layer 0's tensors are plain bf16 (2-D ones; no packed or scale tensors). */
  readonly firstPlainBf16: boolean;
  /** Whether any layer tensor is quantized (packed, scales, or not a float dtype). */
  readonly quantized: boolean;
  /** Elements of the largest layer, and of its largest MLP or MoE block. */
  readonly elements: number;
  readonly mlpElements: number;
}

/** Float32 bytes of a dense llama-like layer's Linear weights. */
function denseLayerBytes(cfg: DecoderConfig): number {
  const q = cfg.heads * cfg.headDim;
  const kv = cfg.kvHeads * cfg.headDim;
  return 4 * cfg.hidden * (2 * q + 2 * kv + 3 * cfg.intermediate);
}

const MASK_MIN = -3.4028234663852886e38;

/**
 * The config of the model's causal LM: a multimodal `llama4` config's
 * `text_config` (dtype inherited), a Llava-layout config's text config
 * (see {@link visionLanguageText}), else the config itself.
 */
export function languageModelConfig(raw: Record<string, unknown>): Record<string, unknown> {
  const vlm = typeof raw.model_type === 'string' ? VISION_LANGUAGE.get(raw.model_type) : undefined;
  if (vlm) return vlm.textOnly ? vlm.textOnly(visionLanguageText(vlm, raw)) : visionLanguageText(vlm, raw);
  const text = raw.text_config;
  if (raw.model_type !== 'llama4' || typeof text !== 'object' || text === null) return raw;
  const t = text as Record<string, unknown>;
  return { ...t, model_type: t.model_type ?? 'llama4_text', dtype: t.dtype ?? t.torch_dtype ?? raw.dtype ?? raw.torch_dtype };
}

/**
 * Where a checkpoint stores the causal LM: under `language_model.model` /
 * `language_model.lm_head` (Llama 4, and Llava-layout models as published and
 * as transformers saves them), under `model.language_model` / `lm_head`
 * (Llava-layout models in transformers 5's in-memory names, Qwen3-VL), under
 * `model.text_model` / `lm_head` (Idefics3), else a causal LM's (Qwen2-VL,
 * Qwen2.5-VL).
 */
export function languageModelNames(has: (tensor: string) => boolean): LanguageModelNames {
  if (has('language_model.model.embed_tokens.weight')) return { model: 'language_model.model', head: 'language_model.lm_head' };
  if (has('model.language_model.embed_tokens.weight')) return { model: 'model.language_model', head: 'lm_head' };
  if (has('model.text_model.embed_tokens.weight')) return { model: 'model.text_model', head: 'lm_head' };
  return CAUSAL_LM_NAMES;
}

/** The `model_type` and dtype of the model folder `dir`'s causal LM (its config's, as the executor reads them), without opening its weights. */
export async function checkpointFacts(dir: string): Promise<{ modelType: string; dtype: string }> {
  const raw = languageModelConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>);
  const dtype = raw.dtype ?? raw.torch_dtype ?? 'bfloat16';
  return { modelType: String(raw.model_type ?? ''), dtype: dtype === 'float16' || dtype === 'float32' ? dtype : 'bfloat16' };
}

/** Additive mask: position i sees j ≤ i, and only the last `window` of them when set. */
export function causalMask(seq: number, window: number | null = null): Float32Array {
  const m = new Float32Array(seq * seq);
  for (let i = 0; i < seq; i++) for (let j = 0; j < seq; j++) if (j > i || (window !== null && i - j >= window)) m[i * seq + j] = MASK_MIN;
  return m;
}

function f32(data: Float32Array, dims: readonly number[]): RawTensor {
  return { type: 'float32', data, dims };
}

/** `[N, Kₛ]` tensors side by side: `[N, ΣKₛ]`. */
function concatColumns(parts: readonly RawTensor[]): RawTensor {
  const n = parts[0]!.dims[0]!;
  const k = parts.reduce((s, p) => s + p.dims[1]!, 0);
  const out = new Float32Array(n * k);
  let c0 = 0;
  for (const p of parts) {
    const w = p.dims[1]!;
    const src = p.data as Float32Array;
    for (let r = 0; r < n; r++) out.set(src.subarray(r * w, (r + 1) * w), r * k + c0);
    c0 += w;
  }
  return f32(out, [n, k]);
}

/** A model folder opened for forward passes. */
export class ForwardModel {
  /** Where layer passes add up their time, when set (profiling). */
  timings?: ForwardTimings;
  /**
   * Float32 weight bytes one graph of several consecutive layers may hold
   * (see {@link layerRanges}); 0 runs one layer per graph. On CUDA every
   * session has a fixed cost and hidden states cross the bus at each graph
   * boundary, so layers are grouped there; on the CPU a graph per layer is
   * as fast and keeps one layer's weights resident.
   */
  graphWeightBytes: number;
  /**
   * Float32 weight bytes one graph of several layers may hold when its
   * weights are the checkpoint's own bf16 tensors, which onnxruntime reads
   * from the files (external data) instead of the graph bytes: the
   * protobuf's 2 GiB limit behind {@link graphWeightBytes} does not bind
   * them, device memory does. On CUDA `QUANTC_GRAPH_WEIGHT_MB` (16 GiB by
   * default, see `graphWeightMegabytes`); 0 on the CPU.
   */
  referencedGraphWeightBytes: number;
  /**
   * Whether {@link RunOptions.onLayer} receives every layer's hidden states.
   * Off, a graph of several layers copies back only its last layer's states
   * (what the next graph, the head and perplexity need; calibration reads
   * only the statistics) and the others reach `onLayer` with empty data.
   * Off on CUDA, where graphs hold several layers; set it to compare
   * per-layer outputs there.
   */
  layerOutputs: boolean;
  /** Whether weights are widened and transposed once, when a graph is loaded (onnxruntime constant folding at session creation); on CUDA they are on the device at every run. */
  foldConstants: boolean;
  /**
   * Whether the sequential pipeline runs each layer pass as looped graph
   * runs over all batches (layer-loop.ts) rather than a run per batch. On
   * CUDA, where every run's statistics cross the bus; on the CPU a run per
   * batch costs little and keeps memory low.
   */
  loopLayers: boolean;
  /**
   * Whether looped layer passes take the layer's weights as graph inputs
   * (`WeightFeeds`) rather than constants, so that one session, kept until
   * {@link releaseRuntimes}, serves every same-shaped layer and pass: on
   * CUDA a session costs its creation and a slow first run (allocator and
   * cuBLAS set-up) against one upload of the weights per run. Off on the
   * CPU, where sessions are cheap and constant folding transposes the
   * weights once instead of at every run.
   */
  feedWeights: boolean;
  /**
   * Whether stacks of hidden states between looped layer passes, and the
   * states between graphs of several layers ({@link HiddenBatch.stored}),
   * hold the model's 16-bit dtype when it computes in bfloat16 or float16
   * (its hidden states are values of that dtype there, so nothing is lost):
   * half the bytes over the bus each way and in host memory. On by default.
   */
  compactStacks = true;
  /** What the checkpoint's layer tensors hold (see {@link layerTensors}), once looked at. */
  private tensors?: LayerTensors;
  /** The sessions of fed layer graphs, one runtime per device, shared with {@link withWeights} copies. */
  private shared: Map<number | undefined, GraphRuntime>;
  /** Worker threads of looped passes shared over several devices, by device and whether their weights are fed (see deviceWorker). */
  private workers: { readonly byKey: Map<string, DeviceWorkerRuntime | null>; released: number };
  /**
   * CUDA device ordinals the looped layer passes share their batches over
   * (each device runs its share with its own copy of the layer, at the same
   * time; statistics fold in batch order); every other graph of the model
   * runs on the first. Unset: the provider's default device.
   */
  deviceIds?: readonly number[];
  /**
   * Tokens one iteration of a looped layer pass takes at most: consecutive
   * batches of one shape share a slot up to this many (layer-loop.ts:
   * groupSlots), fewer iterations for the same work. 0: one batch a slot.
   */
  loopSlotTokens = loopSlotTokensFromEnv();
  /** The precision layer and head graphs compute in (see precision.ts; {@link usePrecision} sets it): float32 unless asked. */
  precision: ResolvedPrecision = { requested: 'fp32', runs: 'fp32' };
  /**
   * Whether float32 layer graphs run plain causal attention as one fused
   * kernel (precision.ts: setPlainFusedAttention): on the CPU, unless
   * `QUANTC_CPU_FUSED_ATTENTION=0`. The same outputs as the masked ops, bit
   * for bit where compared (test/forward-fused-attention.test.ts); at
   * 2048-token sequences the 1B llama's runs took a fifth less time on a
   * 2-core CPU.
   */
  fusePlainAttention: boolean;

  private constructor(
    readonly config: DecoderConfig,
    readonly raw: Readonly<Record<string, unknown>>,
    readonly weights: WeightReader,
    readonly device: Device,
    private readonly layerBuilder: LayerBuilder,
  ) {
    this.graphWeightBytes = device === 'cuda' ? CUDA_GRAPH_WEIGHT_BYTES : 0;
    this.referencedGraphWeightBytes = device === 'cuda' ? graphWeightMegabytes() * 2 ** 20 : 0;
    this.foldConstants = device !== 'cuda';
    this.layerOutputs = device !== 'cuda';
    this.loopLayers = device === 'cuda';
    this.fusePlainAttention = device === 'cpu' && process.env.QUANTC_CPU_FUSED_ATTENTION !== '0';
    // QUANTC_FEED_WEIGHTS=0 keeps weights as constants (for comparisons).
    this.feedWeights = device === 'cuda' && process.env.QUANTC_FEED_WEIGHTS !== '0';
    this.shared = new Map();
    this.workers = { byKey: new Map(), released: 0 };
  }

  /**
   * The worker thread that runs a looped pass's share `share` on `deviceId` where
   * the batches are shared by several devices: onnxruntime-node runs a
   * session synchronously on the calling thread, so the shares run at the
   * same time only from threads of their own. Null where workers are not
   * built (tests of the sources) or `QUANTC_DEVICE_WORKERS=0`: the shares
   * then take turns in this thread, with the same results. Fed graphs'
   * workers keep their sessions across layers (as {@link sharedRuntime}).
   */
  private deviceWorker(share: number, deviceId: number | undefined, fed: boolean): DeviceWorkerRuntime | null {
    if (process.env.QUANTC_DEVICE_WORKERS === '0') return null;
    // By share rather than device alone: two shares given one device (a bench's `0,0`) still run at once.
    const key = `${fed ? 'fed' : 'own'}:${share}:${deviceId ?? ''}`;
    let w = this.workers.byKey.get(key);
    if (w === undefined) {
      w = startDeviceWorker(this.device, deviceId, { foldConstants: this.foldConstants, ...(fed ? { maxSessions: FED_SESSIONS } : {}) });
      this.workers.byKey.set(key, w);
    }
    if (w) w.timings = this.timings;
    return w;
  }

  /** The runtime of fed layer graphs on `deviceId`, kept across layers (at most {@link FED_SESSIONS} sessions). */
  private sharedRuntime(deviceId: number | undefined): GraphRuntime {
    let rt = this.shared.get(deviceId);
    if (!rt) {
      rt = this.runtime(deviceId);
      rt.maxSessions = FED_SESSIONS;
      this.shared.set(deviceId, rt);
    }
    return rt;
  }

  /** How stacks of this model's hidden states travel (see {@link compactStacks}). */
  stackDtype(): StackDtype {
    return this.compactStacks && this.precision.low ? this.precision.low.dtype : 'float32';
  }

  /** Runs the device worker threads ran (see deviceWorker), for tests and reports. */
  workerRuns(): number {
    return [...this.workers.byKey.values()].reduce((n, w) => n + (w?.runs ?? 0), this.workers.released);
  }

  /** Releases the sessions of fed layer graphs (after the last layer pass). */
  async releaseRuntimes(): Promise<void> {
    const runtimes = [...this.shared.values()];
    this.shared.clear();
    for (const rt of runtimes) await rt.dispose();
    const workers = [...this.workers.byKey.values()];
    this.workers.byKey.clear();
    for (const w of workers) {
      this.workers.released += w?.runs ?? 0;
      await w?.terminate();
    }
  }

  /** A runtime for this model's graphs, timed when profiling. */
  private runtime(deviceId: number | undefined = this.deviceIds?.[0]): GraphRuntime {
    const runtime = new GraphRuntime(this.device);
    runtime.timings = this.timings;
    runtime.foldConstants = this.foldConstants;
    runtime.deviceId = deviceId;
    return runtime;
  }

  /** The same model reading `weights` instead (a transform's changed weights over the checkpoint); settings are copied. */
  withWeights(weights: WeightReader): ForwardModel {
    return this.copy(this.config, weights);
  }

  /**
   * The model as llm-compressor's sequential pipeline runs it while it
   * calibrates: without the sliding window it drops (see
   * `windowDroppedInCalibration`); itself where nothing differs.
   */
  asCalibrated(): ForwardModel {
    return windowDroppedInCalibration(this.config) === null ? this : this.copy({ ...this.config, slidingWindow: null }, this.weights);
  }

  private copy(config: DecoderConfig, weights: WeightReader): ForwardModel {
    const m = new ForwardModel(config, this.raw, weights, this.device, this.layerBuilder);
    m.graphWeightBytes = this.graphWeightBytes;
    m.referencedGraphWeightBytes = this.referencedGraphWeightBytes;
    m.layerOutputs = this.layerOutputs;
    m.foldConstants = this.foldConstants;
    m.loopLayers = this.loopLayers;
    m.feedWeights = this.feedWeights;
    m.fusePlainAttention = this.fusePlainAttention;
    m.compactStacks = this.compactStacks;
    m.shared = this.shared;
    m.workers = this.workers;
    m.loopSlotTokens = this.loopSlotTokens;
    m.deviceIds = this.deviceIds;
    m.precision = this.precision;
    m.timings = this.timings;
    return m;
  }

  /** Computes in `requested` precision from now on, where this architecture and checkpoint allow it; returns what runs. */
  usePrecision(requested: Precision): ResolvedPrecision {
    this.precision = resolvePrecision(requested, this.config.modelType, this.config.dtype, this.device);
    // A model loaded in its 16-bit dtype holds its float32 vectors rounded to it; one loaded in float32 keeps them.
    this.weights.loadedAs = this.precision.runs === 'fp32' ? null : this.precision.runs;
    return this.precision;
  }

  /** Opens `dir` (config.json + safetensors); throws {@link UnsupportedModelError} for an architecture it cannot run. */
  static async open(dir: string, device: Device = 'cpu'): Promise<ForwardModel> {
    const declared = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    let raw = languageModelConfig(declared);
    const layerBuilder = layerBuilderFor(raw);
    const index = await openCheckpoint(dir);
    // A multimodal checkpoint stores its language model under its own names; calibration and eval run text only, through it.
    const has = (t: string): boolean => index.tensors.has(t);
    const names = languageModelNames(has);
    // transformers leaves a stored lm_head untied (Mistral3Config ties by default, published checkpoints store the head).
    if (raw !== declared && raw.model_type !== 'llama4_text' && (has(`${names.head}.weight`) || has(`${names.head}.weight_packed`))) raw = { ...raw, tie_word_embeddings: false };
    const config = readDecoderConfig(raw);
    return new ForwardModel(config, raw, new WeightReader(index, config.dtype, names), device, layerBuilder);
  }

  /** Token embeddings of each batch. */
  async embed(batches: readonly TokenBatch[]): Promise<HiddenBatch[]> {
    const table = await this.weights.rowReader(`${this.weights.names.model}.embed_tokens.weight`);
    const h = this.config.hidden;
    // GraniteMoE scales the embeddings by `embedding_multiplier`.
    const mult = this.config.embeddingMultiplier;
    // On bf16 embeddings the product (float32 inside, a python float scalar) is rounded.
    const round = this.precision.low ? roundTo(this.precision.low.dtype) : undefined;
    /** Calls `put` with each token of batch `b` and where its row goes. */
    const eachToken = (b: TokenBatch, put: (tok: number, at: number) => void): void => {
      const seq = b[0]?.length ?? 0;
      b.forEach((row, i) =>
        row.forEach((tok, t) => {
          if (!Number.isInteger(tok) || tok < 0 || tok >= table.rows) throw new RangeError(`token id ${tok} is outside the vocabulary (0..${table.rows - 1})`);
          put(tok, (i * seq + t) * h);
        }),
      );
    };
    // A model computing in its table's 16-bit dtype gets the rows as stored: exact, half the bytes, and what a graph of several layers takes as it is.
    const low = this.compactStacks ? this.precision.low?.dtype : undefined;
    const stored = table.stored;
    return batches.map((b) => {
      const seq = b[0]?.length ?? 0;
      if (low !== undefined && mult === undefined && stored?.dtype === low) {
        // The ids are checked now; the rows are gathered when first read, or by the first graph itself.
        eachToken(b, () => {});
        return embeddedBatch(low, stored.bits, b, h);
      }
      const data = new Float32Array(b.length * seq * h);
      eachToken(b, (tok, at) => table.rowInto(tok, data, at));
      if (mult !== undefined) {
        const scale = round ? (x: number): number => round(Math.fround(x * Math.fround(mult))) : (x: number): number => x * mult;
        for (let i = 0; i < data.length; i++) data[i] = scale(data[i]!);
      }
      return { data, batch: b.length, seq };
    });
  }

  /**
   * Runs every decoder layer on every batch, layer-major (layers sharing one
   * graph, see {@link layerRanges}, batch by batch); returns the last layer's
   * outputs.
   */
  async layers(hidden: HiddenBatch[], options: RunOptions = {}): Promise<HiddenBatch[]> {
    const inputsFor = this.positionTables();
    // The graphs of several layers (a gigabyte each on a large model) are written one after the other into the same memory.
    const arena = new ByteArena();
    let current = hidden;
    const expertGroupBytes = this.expertGroupBound(options.expertGroupBytes, this.weights);
    const run = { ...options, expertGroupBytes };
    for (const [first, end] of this.layerRanges(expertGroupBytes)) {
      if (end - first > 1) {
        current = await this.runLayerRange(first, end, current, run, inputsFor, arena);
        continue;
      }
      options.onLayerStart?.(first, this.config.layers);
      // Only the last layer's outputs may go unkept (keepHidden): the others are the next layer's inputs.
      const keepHidden = options.keepHidden !== false || end < this.config.layers;
      const { hidden: next, extras } = await this.runLayer(first, current, { ...run, keepHidden }, inputsFor);
      next.forEach((h, i) => options.onLayer?.(first, i, h, extras[i]!));
      current = next;
    }
    return current;
  }

  /** Per sequence length and attention window: RoPE tables and the causal mask, built once each. */
  positionTables(): LayerInputsFor {
    const tables = new Map<string, PositionTables>();
    return (seq, window) => {
      let t = tables.get(`${seq}/${window}`);
      if (!t) {
        const r = ropeTables(this.config.rope, seq);
        let mask: RawTensor | undefined;
        const chunks = Math.ceil(seq / DELTA_CHUNK);
        t = {
          cos: f32(r.cos, [seq, r.dim]),
          sin: f32(r.sin, [seq, r.dim]),
          mask: () => (mask ??= f32(causalMask(seq, window), [seq, seq])),
          delta_chunks: { type: 'int64', data: BigInt64Array.from({ length: chunks }, (_, i) => BigInt(i)), dims: [chunks] },
        };
        tables.set(`${seq}/${window}`, t);
      }
      return t;
    };
  }

  /**
   * Runs decoder layer `layer` alone on every batch (its graph built from
   * `weights`, the checkpoint's by default, then released) and returns its
   * outputs with each batch's extra graph outputs (observer statistics).
   * With `keepHidden` false the graph computes only the statistics and the
   * returned batches hold no data.
   */
  async runLayer(
    layer: number,
    current: readonly HiddenBatch[],
    options: Pick<RunOptions, 'observe' | 'expertGroupBytes' | 'keepHidden'>,
    inputsFor: LayerInputsFor = this.positionTables(),
    weights: WeightReader = this.weights,
    sink?: OutputSink,
  ): Promise<{ hidden: HiddenBatch[]; extras: Record<string, RawTensor>[] }> {
    const built = performance.now();
    const expertGroupBytes = this.expertGroupBound(options.expertGroupBytes, weights);
    const build = (keepOutput: boolean): Promise<LayerProgram> => this.layerBuilder(weights, this.config, layer, this.raw, { observe: options.observe, expertGroupBytes, precision: this.precision.low, keepOutput, fusePlainAttention: this.fusePlainAttention });
    let keep = options.keepHidden !== false;
    let program = await build(keep);
    // Expert groups add their outputs into the main graph's: such a layer keeps it.
    if (!keep && program.expertGroups) program = await build((keep = true));
    if (this.timings) this.timings.build += performance.now() - built;
    const next: HiddenBatch[] = [];
    const extras: Record<string, RawTensor>[] = [];
    const runtime = this.runtime();
    try {
      for (let i = 0; i < current.length; i++) {
        const b = current[i]!;
        const { out, ...extra } = await runtime.run(`layer_${layer}`, () => program.graph, {
          hidden: f32(b.data, [b.batch, b.seq, this.config.hidden]),
          ...inputsFor(b.seq, windowOf(this.config, layer)),
        });
        next.push({ data: keep ? (out!.data as Float32Array) : new Float32Array(0), batch: b.batch, seq: b.seq });
        extras.push(sink ? keepExpertInputs(extra, (outputs) => sink(i, outputs)) : extra);
      }
    } finally {
      await runtime.dispose();
    }
    if (program.expertGroups) await this.runExpertGroups(program.expertGroups, next, extras, sink);
    return { hidden: next, extras };
  }

  /**
   * Builds decoder layer `layer` of `weights` into `into` as a looped pass
   * builds it (this model's precision, observers `observe`, expert groups
   * bounded by `expertGroupBytes`); false when the layer needs graphs of its
   * own (expert groups). For the looped passes and AWQ's search, which hand
   * it their graph builders.
   * @internal
   */
  async buildLayerInto(layer: number, weights: WeightReader, into: Parameters<BuildInto>[0], observe?: ObserveOption, expertGroupBytes?: number): Promise<boolean> {
    const program = await this.layerBuilder(weights, this.config, layer, this.raw, { observe, expertGroupBytes, into, precision: this.precision.low, fusePlainAttention: this.fusePlainAttention });
    return !program.expertGroups;
  }

  /**
   * Runs decoder layer `layer` over every batch of `stack` as looped graph
   * runs (see layer-loop.ts), at most `runBytes` of hidden states per run:
   * each run's combined statistics go to `sink` (with the run's index), and
   * with `keepOutput` the layer's outputs come back as the next stack.
   * Null when the layer cannot be looped (expert groups, per-token outputs):
   * then {@link runLayer} runs it batch by batch. `reuse`, when given, is
   * memory nothing reads any more of the stack's size and element type (an
   * earlier stack): the outputs are copied into it from the device rather
   * than into fresh memory (see `GraphRuntime.run`), and it is the new
   * stack's data. With `lastAlone` the last batch runs alone (its statistics
   * are then the last batch's: memoryless observers read them).
   */
  async runLayerStacked(
    layer: number,
    stack: HiddenStack,
    options: Pick<RunOptions, 'observe' | 'expertGroupBytes'>,
    inputsFor: LayerInputsFor,
    weights: WeightReader,
    keepOutput: boolean,
    runBytes: number,
    sink?: (run: number, stack: HiddenStack, outputs: Readonly<Record<string, RawTensor>>) => void,
    reuse?: Float32Array | Uint16Array,
    lastAlone = false,
  ): Promise<HiddenStack | null> {
    const built = performance.now();
    const build: BuildInto = (into) => this.buildLayerInto(layer, weights, into, options.observe, options.expertGroupBytes);
    // Several devices: each runs its share of the batches with its own copy of the layer, at the same time (from a
    // worker thread each, see deviceWorker).
    const devices = this.deviceIds?.length ? this.deviceIds : [undefined];
    const shares = shareStack(stack, devices.length);
    // The share with the last batch (a share may be empty).
    let holdsLast = shares.length - 1;
    while (holdsLast > 0 && shares[holdsLast]!.batches.length === 0) holdsLast--;
    // Each run's batches, and the slots they run in: several batches of one shape to a slot where they fit (groupSlots),
    // their estimated activations within what a merged run may hold (an MoE layer's experts on every token take room).
    const perSequence = sequenceBytes(this.config, this.raw);
    const fits = (run: HiddenStack): number => Math.max(1, Math.floor(CUDA_RUN_BYTES / (run.batches[0]!.batch * perSequence(run.batches[0]!.seq))));
    const plans = shares.map((share, d) =>
      share.batches.length === 0 ? [] : splitStack(share, runBytes, lastAlone && d === holdsLast).map((run) => ({ run, slots: groupSlots(run, slotGroup(run, this.loopSlotTokens, fits(run))) ?? run })),
    );
    // One graph per slot size (same-shaped layers share each where their weights are fed).
    const variants = new Map<number, { looped: LoopedLayer; key: string; weightFeeds: Record<string, RawTensor> }>();
    for (const { slots } of plans.flat()) {
      if (variants.has(slots.rows)) continue;
      const feeds = this.feedWeights ? new WeightFeeds() : undefined;
      const looped = await loopedLayer(build, this.config.hidden, slots.rows, keepOutput, feeds, stack.dtype);
      // Whether a layer can be looped does not depend on its slots: the first graph says.
      if (!looped) {
        if (this.timings) this.timings.build += performance.now() - built;
        return null;
      }
      // Reading the fed weights counts as building, as reading them into a graph's constants does.
      variants.set(slots.rows, { looped, key: feeds ? structureKey('looped', looped.bytes) : `looped_${layer}_${slots.rows}`, weightFeeds: feeds ? await feedTensors(feeds) : {} });
    }
    if (this.timings) this.timings.build += performance.now() - built;
    if (variants.size === 0) return keepOutput ? { ...stack } : stack;
    const maxSeq = Math.max(...stack.batches.map((b) => b.seq));
    const tables = inputsFor(maxSeq, windowOf(this.config, layer));
    const target = keepOutput && reuse && reuse.length === stack.data.length && reuse.constructor === stack.data.constructor ? reuse : undefined;
    const results = await Promise.all(
      plans.map(async (plan, d) => {
        const ran: { stack: HiddenStack; statistics: Record<string, RawTensor>; out?: Float32Array | Uint16Array }[] = [];
        if (plan.length === 0) return ran;
        const worker = devices.length > 1 ? this.deviceWorker(d, devices[d], this.feedWeights) : null;
        const runtime: GraphRunner = worker ?? (this.feedWeights ? this.sharedRuntime(devices[d]) : this.runtime(devices[d]));
        try {
          for (const { run, slots } of plan) {
            const { looped, key, weightFeeds } = variants.get(slots.rows)!;
            const into = target ? { out: outputInto(target, stack, slots) } : undefined;
            const result = await runtime.run(key, () => looped.bytes, { ...loopFeeds(slots, tables), ...weightFeeds }, undefined, into);
            const statistics = Object.fromEntries(looped.statistics.map((name, i) => [name, result[looped.outputs[i]!]!]));
            // The run's own batches go to the sink: a modifier folds its statistics by batch count and rows.
            ran.push({ stack: run, statistics, out: result.out?.data as Float32Array | Uint16Array | undefined });
          }
        } finally {
          if (!this.feedWeights) await runtime.dispose();
        }
        return ran;
      }),
    );
    // Statistics fold in batch order whatever device finished first.
    const runs = results.flat();
    runs.forEach((r, i) => sink?.(i, r.stack, r.statistics));
    if (!keepOutput) return stack;
    return { ...stack, data: target ?? concatStackData(runs.map((r) => r.out!)) };
  }

  /**
   * Consecutive layers that share one graph, as `[first, end)` ranges.
   * Layers are grouped only where {@link graphWeightBytes} allows it (or
   * {@link referencedGraphWeightBytes}, for weights read from the files),
   * for llama-like and MoE layers whose MLP or experts fit one graph (see
   * `layerWeights`); everything else runs one layer per graph. Layers of
   * different attention windows share a graph each with its own mask.
   */
  layerRanges(expertGroupBytes = EXPERT_GROUP_BYTES): [number, number][] {
    const cfg = this.config;
    const { bytes: perLayer, inGraph, experts } = this.layerWeights(expertGroupBytes);
    const groupable = inGraph && this.graphWeightBytes > 0;
    const referenced = experts ? this.readsStoredExperts() : this.referencesWeights();
    const bound = Math.max(this.graphWeightBytes, referenced ? this.referencedGraphWeightBytes : 0);
    const size = groupable ? Math.max(1, Math.floor(bound / perLayer)) : 1;
    const ranges: [number, number][] = [];
    for (let layer = 0; layer < cfg.layers; layer += size) ranges.push([layer, Math.min(cfg.layers, layer + size)]);
    return ranges;
  }

  /**
   * Float32 bytes of experts (or MLP slices) one graph may hold: `asked`
   * where given; else, where the experts come as the checkpoint stores them
   * (the checkpoint's own bf16 tensors read from its files by a graph
   * computing in bf16, moe.ts: storedExperts), {@link referencedGraphWeightBytes}
   * rather than the protobuf-bound `EXPERT_GROUP_BYTES` (1 GiB); undefined
   * leaves the layer builders' default.
   */
  expertGroupBound(asked: number | undefined, weights: WeightReader = this.weights): number | undefined {
    if (asked !== undefined) return asked;
    return weights === this.weights && this.readsStoredExperts() && this.referencedGraphWeightBytes > 0 ? this.referencedGraphWeightBytes : undefined;
  }

  /**
   * Whether layer graphs take experts (and dense MLPs) as the checkpoint
   * stores them, read from its files: bf16 graphs on the device over the
   * checkpoint's own plain bf16 weights (moe.ts: storedExperts, and
   * storedInputMajorExperts for gpt-oss's and Llama 4's layout).
   */
  private readsStoredExperts(): boolean {
    const low = this.precision.low;
    return low?.native === true && low.dtype === 'bfloat16' && this.referencesWeights();
  }

  /**
   * Float32 bytes of a layer's Linear weights (the largest layer), whether
   * every layer keeps its MLP or experts inside the layer graph (no expert
   * groups or MLP slices, which run as graphs of their own), and whether its
   * layers hold routed experts. Llama-like layers are sized from the config;
   * {@link GROUPED_MOE} layers from the checkpoint's tensors (a quantized
   * checkpoint's packed shapes do not count their values: its MoE layers
   * each run in a graph of their own); other families are not grouped.
   */
  private layerWeights(expertGroupBytes: number): { bytes: number; inGraph: boolean; experts: boolean } {
    const cfg = this.config;
    if (LLAMA_LIKE.has(cfg.modelType)) {
      const dense = 3 * cfg.hidden * cfg.intermediate * 4;
      return { bytes: denseLayerBytes(cfg), inGraph: cfg.intermediate > 0 && dense <= expertGroupBytes, experts: false };
    }
    if (!GROUPED_MOE.has(cfg.modelType)) return { bytes: 0, inGraph: false, experts: false };
    const t = this.layerTensors();
    return { bytes: 4 * t.elements, inGraph: !t.quantized && t.elements > 0 && 4 * t.mlpElements <= expertGroupBytes, experts: true };
  }

  /** The checkpoint's layer tensors, summed in one pass over its index (cached). */
  private layerTensors(): LayerTensors {
    if (this.tensors) return this.tensors;
    const prefix = `${this.weights.names.model}.layers.`;
    const layers = new Map<number, { all: number; mlp: number }>();
    let quantized = false;
    let first = 0;
    let firstPlainBf16 = true;
    for (const [name, t] of this.weights.index.tensors) {
      if (!name.startsWith(prefix)) continue;
      const dot = name.indexOf('.', prefix.length);
      const layer = Number(name.slice(prefix.length, dot));
      const packed = name.endsWith('_packed') || name.endsWith('_scale') || (t.dtype !== 'BF16' && t.dtype !== 'F16' && t.dtype !== 'F32');
      quantized ||= packed;
      if (layer === 0) {
        first++;
        firstPlainBf16 &&= !packed && (t.shape.length !== 2 || t.dtype === 'BF16');
      }
      const sums = layers.get(layer) ?? { all: 0, mlp: 0 };
      const elements = t.shape.reduce((n, d) => n * d, 1);
      sums.all += elements;
      if (/\.(mlp|block_sparse_moe)\./.test(name.slice(dot))) sums.mlp += elements;
      layers.set(layer, sums);
    }
    const sums = [...layers.values()];
    this.tensors = {
      firstPlainBf16: first > 0 && firstPlainBf16,
      quantized,
      elements: Math.max(0, ...sums.map((l) => l.all)),
      mlpElements: Math.max(0, ...sums.map((l) => l.mlp)),
    };
    return this.tensors;
  }

  /**
   * The embedding table as stored in the checkpoint, where a graph may look
   * the rows of `low` up itself (the rows {@link embed} gives as they are):
   * the checkpoint's own plain table of that dtype, no embedding multiplier.
   */
  private storedEmbeddings(low: 'bfloat16' | 'float16'): { type: OnnxElemType; rows: number; bytes: FileBytes } | undefined {
    const entry = this.weights.index.tensors.get(`${this.weights.names.model}.embed_tokens.weight`);
    if (!entry || entry.shape.length !== 2 || entry.dtype !== (low === 'bfloat16' ? 'BF16' : 'F16') || this.weights.changed || this.config.embeddingMultiplier !== undefined) return undefined;
    return { type: low === 'bfloat16' ? OnnxType.bfloat16 : OnnxType.float16, rows: entry.shape[0]!, bytes: { file: entry.file, offset: entry.offset, byteLength: entry.byteLength } };
  }

  /**
   * Whether layer graphs reference the Linear weights in the checkpoint's
   * files rather than copy them (see `GraphBuilder.model`): the checkpoint's
   * own weights, unchanged, plain bf16 (a quantized checkpoint's are
   * dequantized into the graph), external data not turned off.
   */
  private referencesWeights(): boolean {
    return process.env.QUANTC_EXTERNAL_WEIGHTS !== '0' && !this.weights.changed && this.layerTensors().firstPlainBf16;
  }

  /**
   * Runs layers `[first, end)` as one graph on every batch: each layer's
   * output is a graph output (`out_<layer>`) and the next layer's input, so
   * hidden states stay on the device between the layers. Observers see the
   * layers batch by batch (each module's batches still in order).
   */
  private async runLayerRange(
    first: number,
    end: number,
    current: HiddenBatch[],
    options: RunOptions,
    inputsFor: LayerInputsFor,
    arena: ByteArena,
  ): Promise<HiddenBatch[]> {
    const built = performance.now();
    const g = new GraphBuilder();
    const H = this.config.hidden;
    // In bf16/fp16 the states between graphs travel as the model's 16-bit elements (exact: the layers' outputs are values of that dtype).
    const low = this.compactStacks ? this.precision.low?.dtype : undefined;
    // The first graph looks the embedding rows up itself where the batches are the table's stored rows (embed).
    const table = first === 0 && low !== undefined ? this.storedEmbeddings(low) : undefined;
    const idsIn = table !== undefined && current.length > 0 && current.every((b) => b.tokens !== undefined);
    const storedIn = !idsIn && low !== undefined && current.length > 0 && current.every((b) => b.stored?.dtype === low);
    const hiddenIn = idsIn
      ? g.op('Cast', [g.op('Gather', [g.constRaw(table.type, [table.rows, H], table.bytes), g.input('input_ids', OnnxType.int64, ['batch', 'seq'])], { axis: 0 })], { to: OnnxType.float })
      : storedIn
        ? widened(g, g.input('hidden', stackType(low), ['batch', 'seq', H]), low)
        : g.input('hidden', OnnxType.float, ['batch', 'seq', H]);
    const inputs = { hidden: hiddenIn, ...positionInputs(g, this.config.rope.dim), lengths: sharedLengths(g, hiddenIn) };
    // Layers of other attention windows than the first's (gpt-oss alternates sliding and full) read masks of their own.
    const masks = new Map<number | null, string>([[windowOf(this.config, first), inputs.mask]]);
    const maskFor = (window: number | null): string => {
      let name = masks.get(window);
      if (name === undefined) masks.set(window, (name = g.input(`mask_${window ?? 'causal'}`, OnnxType.float, ['seq', 'seq'])));
      return name;
    };
    const keepLast = options.keepHidden !== false || end < this.config.layers;
    const storedOut = low !== undefined && !this.layerOutputs && keepLast;
    // Statistics only: the last layer's work after its last observed input (a dense down_proj product, the residual) is left out.
    if (!keepLast) g.pruneUnused();
    packMinMax(g);
    let hidden = inputs.hidden;
    for (let layer = first; layer < end; layer++) {
      options.onLayerStart?.(layer, this.config.layers);
      const output = `out_${layer}`;
      // Only outputs that are fetched are graph outputs: every layer's where they are asked for, else the last layer's float32 states.
      const declare = this.layerOutputs || (layer === end - 1 && keepLast && !storedOut);
      const program = await this.layerBuilder(this.weights, this.config, layer, this.raw, {
        observe: options.observe,
        expertGroupBytes: options.expertGroupBytes,
        into: { g, inputs: { ...inputs, hidden, mask: maskFor(windowOf(this.config, layer)) }, output, declare, suffix: `@${layer}` },
        precision: this.precision.low,
        fusePlainAttention: this.fusePlainAttention,
      });
      // layerRanges groups only layers whose MLP or experts stay in the graph; groups here would go unrun.
      if (program.expertGroups) throw new Error(`layer ${layer} has expert groups and cannot share a graph`);
      hidden = output;
    }
    const last = `out_${end - 1}`;
    const packedStats = finishPackedMinMax(g);
    if (storedOut) g.output(narrowed(g, last, low), 'stored_out', stackType(low), ['batch', 'seq', H]);
    const key = `layers_${first}_${end}${idsIn ? '_ids' : storedIn ? '_stored' : ''}`;
    // Used once: the session is made at the first run (onnxruntime copies the model), before anything else is written into the arena.
    const model = g.model(key, arena);
    if (this.timings) this.timings.build += performance.now() - built;
    const otherMasks = (seq: number): Record<string, Feed> =>
      Object.fromEntries([...masks].filter(([w]) => w !== windowOf(this.config, first)).map(([w, name]) => [name, inputsFor(seq, w).mask]));
    const runtime = this.runtime();
    const next: HiddenBatch[] = [];
    try {
      for (let i = 0; i < current.length; i++) {
        const b = current[i]!;
        const dims = [b.batch, b.seq, H];
        const hiddenFeed: Record<string, RawTensor> = idsIn
          ? { input_ids: tokenIds(b.tokens!) }
          : { hidden: storedIn ? { type: low === 'bfloat16' ? 'uint16' : 'float16', data: b.stored!.data, dims } : f32(b.data, dims) };
        const result = await runtime.run(
          key,
          () => model,
          { ...hiddenFeed, ...inputsFor(b.seq, windowOf(this.config, first)), ...otherMasks(b.seq) },
          this.layerOutputs ? undefined : (name) => name === 'stored_out' || !name.startsWith('out_') || (name === last && keepLast && !storedOut),
        );
        const extras = new Map<number, Record<string, RawTensor>>();
        for (const [name, t] of unpackMinMax(result, g.outputList, packedStats, (v): RawTensor => ({ type: 'float32', data: Float32Array.of(v), dims: [] }))) {
          if (name.startsWith('out_') || name === 'stored_out') continue;
          // A layer's output without a module name comes as `<name>@<layer>` (MoE routing counts).
          const own = /^(.*)@(\d+)$/.exec(name);
          const layer = Number(own?.[2] ?? /model\.layers\.(\d+)\./.exec(name)?.[1] ?? end - 1);
          extras.set(layer, { ...extras.get(layer), [own?.[1] ?? name]: t });
        }
        const stored = result.stored_out?.data as Uint16Array | undefined;
        const out = stored ? storedBatch(low!, stored, b.batch, b.seq) : { data: (result[last]?.data as Float32Array | undefined) ?? new Float32Array(0), batch: b.batch, seq: b.seq };
        for (let layer = first; layer < end; layer++) {
          const data = (result[`out_${layer}`]?.data as Float32Array | undefined) ?? new Float32Array(0);
          options.onLayer?.(layer, i, layer === end - 1 && stored ? out : { data, batch: b.batch, seq: b.seq }, extras.get(layer) ?? {});
        }
        next.push(out);
      }
    } finally {
      await runtime.dispose();
    }
    return next;
  }

  /**
   * Runs the expert groups of an MoE layer on every batch, one group's
   * weights at a time, adding each group's partial output to the layer
   * output and its observer outputs to the batch's extras. Groups with a
   * joined observer run batch by batch instead, every group resident.
   */
  private async runExpertGroups(groups: ExpertGroups, hidden: HiddenBatch[], extras: Record<string, RawTensor>[], sink?: OutputSink): Promise<void> {
    const ranges: [number, number][] = [];
    for (let start = 0; start < groups.experts; start += groups.groupSize) ranges.push([start, Math.min(groups.groupSize, groups.experts - start)]);
    const build = async (start: number, count: number): Promise<ModelBytes> => {
      const built = performance.now();
      const bytes = await groups.build(start, count);
      if (this.timings) this.timings.build += performance.now() - built;
      return bytes;
    };
    const give = (i: number, observed: Record<string, RawTensor>): void => {
      if (sink) sink(i, observed);
      else Object.assign(extras[i]!, observed);
    };
    // In the low dtype the groups' outputs add up (rounded) on their own before the rounded residual add, as the block's output does.
    const low = this.precision.low;
    const sums = low ? hidden.map((b) => ({ ...b, data: new Float32Array(b.data.length) })) : hidden;
    if (groups.joined) await this.runJoinedGroups(groups.joined, ranges, build, sums, extras, give);
    else
      for (const [start, count] of ranges) {
        const bytes = await build(start, count);
        const runtime = this.runtime();
        try {
          for (let i = 0; i < hidden.length; i++) give(i, await this.runGroup(runtime, bytes, start, count, sums[i]!, extras[i]!, low && !groups.slices ? roundTo(low.dtype) : undefined));
        } finally {
          await runtime.dispose();
        }
      }
    if (low) {
      const round = roundTo(low.dtype);
      // GraniteMoE's block output times residual_multiplier (rounded) joins the residual.
      const scale = this.config.residualMultiplier;
      const scaled = (y: number): number => (scale === undefined ? y : round(Math.fround(y * Math.fround(scale))));
      hidden.forEach((b, i) => {
        // A shared expert (qwen2_moe) joins the rounded routed sum before the residual add.
        const shared = extras[i]!.moe_shared?.data as Float32Array | undefined;
        b.data.forEach((x, j) => (b.data[j] = round(x + scaled(round(round(sums[i]!.data[j]!) + (shared?.[j] ?? 0))))));
      });
    }
    for (const extra of extras) {
      delete extra.moe_in;
      delete extra.moe_weights;
      delete extra.moe_mask;
      delete extra.moe_shared;
    }
  }

  /**
   * Groups holding slices of one observed input: per batch, every group
   * runs, their `joined.input` outputs are concatenated along the last axis
   * in group order, and the joined observer graphs run on that.
   */
  private async runJoinedGroups(
    joined: JoinedObserver,
    ranges: readonly [number, number][],
    build: (start: number, count: number) => Promise<ModelBytes>,
    hidden: HiddenBatch[],
    extras: Record<string, RawTensor>[],
    give: (i: number, observed: Record<string, RawTensor>) => void,
  ): Promise<void> {
    const graphs: ModelBytes[] = [];
    for (const [start, count] of ranges) graphs.push(await build(start, count));
    const runtime = this.runtime();
    try {
      for (let i = 0; i < hidden.length; i++) {
        const observed: Record<string, RawTensor> = {};
        const slices: RawTensor[] = [];
        for (let r = 0; r < ranges.length; r++) {
          const [start, count] = ranges[r]!;
          const { [joined.input]: slice, ...rest } = await this.runGroup(runtime, graphs[r]!, start, count, hidden[i]!, extras[i]!);
          if (!slice) throw new Error(`expert group ${start} returned no ${joined.input}`);
          slices.push(slice);
          Object.assign(observed, rest);
        }
        const x = concatColumns(slices);
        for (const j of joined.graphs) Object.assign(observed, await runtime.run(j.name, () => j.bytes, { x }));
        give(i, observed);
      }
    } finally {
      await runtime.dispose();
    }
  }

  /** Runs expert group `[start, start + count)` on one batch: adds its partial output to `out`, returns its observer outputs. */
  private async runGroup(
    runtime: GraphRuntime,
    bytes: ModelBytes,
    start: number,
    count: number,
    out: HiddenBatch,
    extra: Record<string, RawTensor>,
    round?: (x: number) => number,
  ): Promise<Record<string, RawTensor>> {
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
    const h = out.data;
    const add = partial!.data as Float32Array;
    // The block output joins the residual scaled as in the layer graph (GraniteMoE's residual_multiplier).
    const scale = this.config.residualMultiplier;
    // In the low dtype `round` rounds each sum, as adding a group's experts to the block output does.
    if (round) for (let j = 0; j < h.length; j++) h[j] = round(h[j]! + add[j]!);
    else if (scale === undefined) for (let j = 0; j < h.length; j++) h[j]! += add[j]!;
    else for (let j = 0; j < h.length; j++) h[j]! += Math.fround(add[j]! * scale);
    return observed;
  }

  /**
   * Runs the final norm on each batch with `observe`'s statistics of
   * `lm_head`'s input (its Hessian for GPTQ), keyed by `head` (the module
   * name the caller knows it by), and hands each batch's outputs to `give`.
   */
  async observeHead(hidden: readonly HiddenBatch[], head: string, observe: Observation, give: (batchIndex: number, outputs: Readonly<Record<string, RawTensor>>) => void): Promise<void> {
    const bytes = await headObserverGraph(this.weights, this.config, head, observe, this.precision.low);
    const runtime = this.runtime();
    try {
      for (let i = 0; i < hidden.length; i++) {
        const b = hidden[i]!;
        give(i, await runtime.run('head_observers', () => bytes, { hidden: f32(b.data, [b.batch, b.seq, this.config.hidden]) }));
      }
    } finally {
      await runtime.dispose();
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
      const bytes = await headGraph(this.weights, this.config, output, start, count, this.precision.low);
      const runtime = this.runtime();
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

/** `QUANTC_LOOP_SLOT_TOKENS=N` (a non-negative integer; 0: one batch a slot), else {@link LOOP_SLOT_TOKENS}: for comparisons. */
function loopSlotTokensFromEnv(): number {
  const v = process.env.QUANTC_LOOP_SLOT_TOKENS;
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : LOOP_SLOT_TOKENS;
}
