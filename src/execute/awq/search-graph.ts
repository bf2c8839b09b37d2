/**
 * The graph of AWQ's grid search for one mapping: the parent module (a
 * Linear, llama-style self-attention, or the SiLU-gated MLP) evaluated on
 * its cached input for many candidate balance weights at once. Each balance
 * weight is a graph input `w<i> [P, out, in]` whose first slice is the
 * current (unquantized) weight and the others are grid points' pseudo-
 * quantized weights; the graph returns `loss [P − 1]`, the summed squared
 * difference of each grid point's parent output from the first slice's, so
 * a whole chunk of the grid costs one run per batch instead of one per point.
 * Weights of the parent's other Linear layers (o_proj, down_proj) are
 * initializers, as they stand at that point of the layer's smoothing, or
 * with {@link SearchGraphSpec.feeds} inputs like every other weight.
 */
import { GraphBuilder, OnnxType, type WeightFeeds } from '../onnx/graph-builder.js';
import { hostIndex } from '../onnx/host-index.js';
import { sparseMixer, topKSoftmax } from '../forward/block-sparse-moe-layer.js';
import type { DecoderConfig } from '../forward/decoder-config.js';
import type { DenseMatrix } from '../forward/dequantize.js';
import type { LayerInputs } from '../forward/llama-layer.js';
import { RecordingBuilder, stackInputs, stackSlot, type StackDtype } from '../forward/layer-loop.js';
import { clampedSwiglu, sinkAttend } from '../forward/gpt-oss-layer.js';
import { mlaFromProjections, sigmoidGroupTopK } from '../forward/mla-layer.js';
import type { WeightReader } from '../forward/weights.js';
import { scatterTopK, softmaxTopK, type Routing } from '../forward/moe.js';
import { attention, linear, partialRotary, rmsNorm, silu, splitHeads } from '../forward/ops.js';
import { graphPrecision, lowOp, matmul, matmulBias, onnxType, rounded, setGraphPrecision, setPlainFusedAttention, type LowPrecision } from '../forward/precision.js';

/** "Until the end" for a Slice. */
const TO_END = 2 ** 62;

/** How the parent module computes its output from its balance layers. */
export type ParentKind = 'linear' | 'attention' | 'mlp' | 'moe' | 'mla';

/**
 * An MoE block's router: softmax top-k (optionally renormalized), sigmoid
 * scores with correction bias and group-limited top-k (mla-layer.ts),
 * GraniteMoE's softmax over the top-k logits, or PhiMoE's sparsemixer
 * (block-sparse-moe-layer.ts).
 */
export type MoeRouting =
  /** `keepFloat32`: the top-k weights stay float32 (Mixtral's experts multiply by them before the cast down). */
  | { readonly kind: 'softmax'; readonly topK: number; readonly normalize: boolean; readonly keepFloat32?: boolean }
  | { readonly kind: 'topk-softmax'; readonly topK: number }
  | { readonly kind: 'sparsemixer'; readonly jitterEps: number }
  /** Llama 4's: sigmoid of the top-k logits, each expert's weight scaling its input instead of its output. */
  | { readonly kind: 'input-sigmoid'; readonly topK: number }
  | { readonly kind: 'sigmoid'; readonly bias?: Float32Array; readonly raw: Readonly<Record<string, unknown>>; readonly experts: number };

/** A Linear inside the parent: a balance layer (its index: the candidates) or a fixed weight. */
export type ParentLinear = number | DenseMatrix;

/**
 * An MoE block as a parent (the router, every expert's gated MLP, the routed
 * combination, plus a shared expert where the block has one): the router and
 * the experts' down projections as they stand, and which balance layers are
 * each expert's gate and up.
 */
export interface MoeParent {
  readonly router: DenseMatrix;
  /** The router's bias (gpt-oss). */
  readonly routerBias?: Float32Array;
  readonly routing: MoeRouting;
  readonly experts: readonly {
    readonly gate: number;
    readonly up: number;
    readonly down: DenseMatrix;
    readonly gateBias?: Float32Array;
    readonly upBias?: Float32Array;
    readonly downBias?: Float32Array;
  }[];
  /**
   * The experts' activation: `silu(gate)·up`, or gpt-oss's clamped SwiGLU on
   * `[gate | up]` (the halves of its fused columns, as llm-compressor splits
   * them) read back interleaved: gate the even columns, up the odd ones.
   */
  readonly activation?: 'silu' | 'gpt-oss';
  /** The shared expert, added to the routed output; `gate` scales it by `sigmoid(x·gateᵀ)` (Qwen2-MoE's `shared_expert_gate`). */
  readonly shared?: { readonly gate: ParentLinear; readonly up: ParentLinear; readonly down: DenseMatrix; readonly sigmoidGate?: DenseMatrix };
}

/** Everything the graph holds besides the balance weights. */
export interface ParentWeights {
  /** o_proj (attention) or down_proj (mlp), as they stand. */
  readonly out?: DenseMatrix;
  readonly outBias?: Float32Array;
  /** Biases of the balance layers, by balance index. */
  readonly biases: readonly (Float32Array | undefined)[];
  readonly qNorm?: Float32Array;
  readonly kNorm?: Float32Array;
  readonly moe?: MoeParent;
  /** One sink logit per head (gpt-oss attention). */
  readonly sinks?: Float32Array;
  /** MLA self-attention (balance: `q_a_proj` or `q_proj`, then `kv_a_proj_with_mqa`): its other weights as they stand, read from `reader`. */
  readonly mla?: { readonly reader: WeightReader; readonly attention: string; readonly raw: Readonly<Record<string, unknown>>; readonly direct: boolean };
}

/**
 * An integer quantizer the graph applies itself (min-max qparams per group,
 * compressed-tensors' fake quantization), so that a grid point costs one
 * `[in]` scale vector on the way in instead of its pseudo-quantized weights.
 */
export interface InGraphQuantizer {
  readonly bits: number;
  readonly symmetric: boolean;
  /** Columns per group (all columns for channel); null for one group per tensor. */
  readonly groupSize: number | null;
  /** Weight dtype rounding of `W·s`, the qparams and the result (`torch.finfo(dtype).eps` replaces a zero scale). */
  readonly dtype: 'F32' | 'BF16';
}

/**
 * How candidate weights reach the graph: `weights` — every balance layer's
 * candidates as inputs `w<i> [P, out, in]`; `scales` — the balance weights
 * as initializers and the candidates' scales as input `s [P − 1, in]`, the
 * pseudo-quantization done in the graph (layers without a quantizer keep
 * their weight for every point).
 */
export type CandidateInput = { readonly kind: 'weights' } | { readonly kind: 'scales'; readonly balance: readonly DenseMatrix[]; readonly quantizers: readonly (InGraphQuantizer | null)[] };

/** One search graph's description. */
export interface SearchGraphSpec {
  readonly kind: ParentKind;
  readonly cfg: DecoderConfig;
  /** `[out, in]` of each balance layer, in mapping order (q, k, v / gate, up / the Linear). */
  readonly shapes: readonly (readonly [number, number])[];
  readonly weights: ParentWeights;
  readonly candidates?: CandidateInput;
  /** Rank of the cached input: 3 (`[B, T, K]`, the default) or 2 (`[N, K]`: an MoE block's or an expert's tokens). */
  readonly inputRank?: 2 | 3;
  /**
   * The low precision the parent computes in, as llm-compressor runs a bf16
   * model: every op of the parent rounded as transformers' bf16 forward, and
   * each run's loss as `mse_loss(…, reduction="sum")` on bf16 outputs gives
   * it (the difference and its square rounded, the sum rounded once).
   * Undefined: float32. Set for dense parents (a Linear, attention, the MLP) and softmax-routed MoE blocks.
   */
  readonly precision?: LowPrecision;
  /** The attention parent's window (null: causal), which a fused attention kernel takes instead of the mask. */
  readonly window?: number | null;
  /** In float32, run a plain causal attention parent as one fused kernel, as the CPU's layer passes do (ForwardModel.fusePlainAttention). */
  readonly fusePlainAttention?: boolean;
  /**
   * Where set, every weight (the balance layers, the parent's other Linears,
   * norms, biases, and the layer a stacked search replays) is a graph input
   * recorded here instead of a constant, so that same-shaped layers build the
   * same bytes and share one session (fed-weights.ts).
   */
  readonly feeds?: WeightFeeds;
}

/**
 * A search graph, or with `outer` a loop body of it (`prefix` naming its
 * values), computing in the spec's precision (see {@link feedsLike}).
 */
function builder(spec: SearchGraphSpec, prefix?: string, outer?: GraphBuilder): GraphBuilder {
  const g = new GraphBuilder(prefix);
  setGraphPrecision(g, spec.precision);
  if (spec.fusePlainAttention && !spec.precision) setPlainFusedAttention(g);
  feedsLike(g, spec, outer);
  return g;
}

/** Makes `g` feed the spec's weights, if it feeds any; a loop body computes what depends only on them once per run, in `outer`. */
function feedsLike(g: GraphBuilder, spec: SearchGraphSpec, outer?: GraphBuilder): void {
  if (!spec.feeds) return;
  g.feedWeights(spec.feeds);
  if (outer) g.hoistInto(outer);
}

/** A float32 vector or matrix of the parent: a constant, or an input where the graph feeds its weights. */
function parentWeight(g: GraphBuilder, data: Float32Array, dims: readonly number[]): string {
  return g.weight(OnnxType.float, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

function roundTo(g: GraphBuilder, x: string, dtype: 'F32' | 'BF16'): string {
  return dtype === 'BF16' ? g.op('Cast', [g.op('Cast', [x], { to: OnnxType.bfloat16 })], { to: OnnxType.float }) : x;
}

/**
 * `[P, out, in]`: slice 0 the weight itself, then for each scale row `s`
 * `Q(W·s)/s` (see algorithms.md §3.5), Q with min-max qparams per group.
 */
function candidateWeights(g: GraphBuilder, w: DenseMatrix, s: string, q: InGraphQuantizer | null): string {
  const w0 = parentWeight(g, w.data, [w.rows, w.cols]);
  const w0p = g.op('Unsqueeze', [w0, g.i64([0])]);
  const points = g.op('Slice', [g.op('Shape', [s]), g.i64([0]), g.i64([1])]);
  if (!q) return g.op('Concat', [w0p, g.op('Expand', [w0p, g.op('Concat', [points, g.i64([w.rows, w.cols])], { axis: 0 })])], { axis: 0 });
  // The scales are float64 (AWQ's from float64 weight means): `W·s` and `/ s` compute in float64, then round to the weight dtype.
  const s3 = g.op('Unsqueeze', [s, g.i64([1])]);
  const wide = (x: string): string => g.op('Cast', [x], { to: OnnxType.double });
  const narrow = (x: string): string => g.op('Cast', [x], { to: OnnxType.float });
  const ws = roundTo(g, narrow(g.op('Mul', [wide(w0p), s3])), q.dtype);
  const gs = q.groupSize ?? w.cols;
  const groups = q.groupSize === null ? [-1, 1, w.rows * w.cols] : [-1, w.rows, w.cols / gs, gs];
  const grouped = g.op('Reshape', [ws, g.i64(groups)]);
  const zero = g.f32(0);
  const lo = g.op('Min', [g.op('ReduceMin', [grouped, g.i64([-1])], { keepdims: 1 }), zero]);
  const hi = g.op('Max', [g.op('ReduceMax', [grouped, g.i64([-1])], { keepdims: 1 }), zero]);
  const qmin = -(2 ** (q.bits - 1));
  const qmax = 2 ** (q.bits - 1) - 1;
  const eps = q.dtype === 'BF16' ? 2 ** -7 : 2 ** -23;
  const nonzero = (x: string): string => g.op('Where', [g.op('Equal', [x, zero]), g.f32(eps), x]);
  let scale: string;
  let zp: string | null = null;
  if (q.symmetric) scale = nonzero(roundTo(g, g.op('Div', [g.op('Max', [g.op('Abs', [lo]), g.op('Abs', [hi])]), g.f32((qmax - qmin) / 2)]), q.dtype));
  else {
    const raw = roundTo(g, g.op('Div', [roundTo(g, g.op('Sub', [hi, lo]), q.dtype), g.f32(qmax - qmin)]), q.dtype);
    // The zero point is computed from the unguarded scale, as compressed-tensors does.
    const z = roundTo(g, g.op('Sub', [g.f32(qmin), roundTo(g, g.op('Div', [lo, raw]), q.dtype)]), q.dtype);
    zp = g.op('Round', [g.op('Clip', [g.op('Where', [g.op('IsNaN', [z]), zero, z]), g.f32(qmin), g.f32(qmax)])]);
    scale = nonzero(raw);
  }
  // `x / scale` and `+ zero_point` are tensor ops of the weight dtype (compressed-tensors' _quantize): each rounded.
  let y = roundTo(g, g.op('Div', [grouped, scale]), q.dtype);
  if (zp) y = roundTo(g, g.op('Add', [y, zp]), q.dtype);
  let deq = g.op('Round', [g.op('Clip', [y, g.f32(qmin), g.f32(qmax)])]);
  if (zp) deq = g.op('Sub', [deq, zp]);
  deq = roundTo(g, g.op('Mul', [deq, scale]), q.dtype);
  const back = roundTo(g, narrow(g.op('Div', [wide(g.op('Reshape', [deq, g.i64([-1, w.rows, w.cols])])), s3])), q.dtype);
  return g.op('Concat', [w0p, back], { axis: 0 });
}

/**
 * `x [B, T, K]` through every slice of `w [P, out, in]` (`[P, in, out]` when
 * `inOut`): `[P, B, T, out]` (in a low-precision graph the candidates are
 * values of the low dtype already; `lowW`: stored in it, see {@link madeLow}).
 */
function batchedLinear(g: GraphBuilder, x: string, w: string, bias?: Float32Array, inOut = false, lowW = false): string {
  const wt = g.op('Unsqueeze', [inOut ? w : g.op('Transpose', [w], { perm: [0, 2, 1] }), g.i64([1])]);
  const xs = g.op('Unsqueeze', [x, g.i64([0])]);
  return bias ? matmulBias(g, xs, wt, parentWeight(g, bias, [bias.length]), lowW) : matmul(g, xs, wt, false, lowW);
}

/**
 * Whether candidates made once a run are stored in the graph's low dtype:
 * where its MatMuls run natively in it (CUDA), each point's weights are cast
 * down once a run instead of once per slot and iteration, and an iteration
 * moves half the bytes. They hold the same values: the MatMul casts them to
 * that dtype either way.
 */
function madeLow(spec: SearchGraphSpec): boolean {
  return spec.precision?.native === true;
}

/** Candidates `w` made in `g` once for many slots, as the search keeps them: in the low dtype where {@link madeLow}. */
function kept(g: GraphBuilder, spec: SearchGraphSpec, w: string): string {
  return madeLow(spec) ? g.op('Cast', [w], { to: onnxType(spec.precision!) }) : w;
}

/** `[P, B, T, C]` → `[P·B, T, C]`; `seq` is the `[1]` sequence length. */
function foldSlices(g: GraphBuilder, x: string, seq: string, c: number): string {
  return g.op('Reshape', [x, g.op('Concat', [g.i64([-1]), seq, g.i64([c])], { axis: 0 })]);
}

/**
 * The candidate weights alone: input `s [P − 1, in]`, outputs `w<i> [P, out, in]`
 * (slice 0 the weight itself), for a search graph that takes `weights`. On
 * the CPU they are computed once per chunk of grid points this way instead
 * of once per batch inside the search graph.
 */
export function candidatesGraph(balance: readonly DenseMatrix[], quantizers: readonly (InGraphQuantizer | null)[]): Uint8Array {
  const g = new GraphBuilder();
  const s = g.input('s', OnnxType.double, ['grid', balance[0]!.cols]);
  balance.forEach((w, n) => g.output(candidateWeights(g, w, s, quantizers[n]!), `w${n}`, OnnxType.float, ['points', w.rows, w.cols]));
  return g.build('awq_candidates');
}

/** Where a search graph reads the attention parent's position tables (graph inputs, or a loop body's outer-scope names). */
interface PositionNames {
  readonly cos: string;
  readonly sin: string;
  readonly mask: string;
}

/** Declares the attention parent's position inputs of `g` (rotary tables and mask per sequence position). */
function positionInputs(g: GraphBuilder, cfg: DecoderConfig): PositionNames {
  return { cos: g.input('cos', OnnxType.float, ['seq', cfg.rope.dim]), sin: g.input('sin', OnnxType.float, ['seq', cfg.rope.dim]), mask: g.input('mask', OnnxType.float, ['seq', 'seq']) };
}

/** The attention parent's layer inputs and its sequence length. */
function attentionInputs(g: GraphBuilder, x: string, pos: PositionNames): { inp: LayerInputs; seq: string } {
  return { inp: { hidden: x, ...pos }, seq: g.op('Slice', [g.op('Shape', [x]), g.i64([1]), g.i64([2])]) };
}

/** Llama 4's router: the top-k logits through a sigmoid, the other experts' weights 0. */
function sigmoidTopK(g: GraphBuilder, logits: string, k: number): Routing {
  const [values, indices] = g.opMulti('TopK', [logits, g.i64([k])], 2, { axis: -1, largest: 1, sorted: 1 });
  return scatterTopK(g, logits, g.op('Sigmoid', [values!]), indices!);
}

/** gpt-oss's activation of `[P, 1, N, I]` gate and up halves: their concatenation split even/odd into gate and up, then clamped SwiGLU. */
function interleavedSwiglu(g: GraphBuilder, gate: string, up: string, inter: number): string {
  const pairs = g.op('Reshape', [g.op('Concat', [gate, up], { axis: -1 }), g.i64([0, 0, 0, inter, 2])]);
  const column = (i: number): string => g.op('Reshape', [g.op('Slice', [pairs, g.i64([i]), g.i64([i + 1]), g.i64([-1])]), g.i64([0, 0, 0, inter])]);
  return clampedSwiglu(g, column(0), column(1));
}

/** The graph's parent kinds that read position tables. */
function readsPositions(kind: ParentKind): boolean {
  return kind === 'attention' || kind === 'mla';
}

/** Declares `x` of a search graph. */
function cachedInput(g: GraphBuilder, spec: SearchGraphSpec): string {
  return g.input('x', OnnxType.float, spec.inputRank === 2 ? ['tokens', spec.shapes[0]![1]] : ['batch', 'seq', spec.shapes[0]![1]]);
}

/** Builds the search graph (see the module comment). Inputs: `x`, `w0…` or `s`, and `cos`/`sin`/`mask` for attention. */
export async function searchGraph(spec: SearchGraphSpec): Promise<Uint8Array> {
  const g = builder(spec);
  const x = cachedInput(g, spec);
  const cand = spec.candidates ?? { kind: 'weights' };
  const ws = cand.kind === 'weights' ? spec.shapes.map(([o, i], n) => g.input(`w${n}`, OnnxType.float, ['points', o, i])) : candidateSet(g, cand, g.input('s', OnnxType.double, ['grid', spec.shapes[0]![1]]));
  const pos = readsPositions(spec.kind) ? positionInputs(g, spec.cfg) : null;
  g.output(await searchLoss(g, spec, x, ws, pos), 'loss', OnnxType.float, ['grid']);
  return g.build('awq_search');
}

/**
 * The search graph with its grid looped on the device: input `s [G, in]`
 * (G a multiple of `chunk`) holds every grid point's scales, an ONNX `Loop`
 * evaluates `chunk` points per iteration (the reference output again with
 * each), and `loss [G]` comes back. onnxruntime-node cannot keep the cached
 * input on the GPU between runs, so a run per chunk of points sent it over
 * the bus once per chunk; looped, it crosses once per grid while an
 * iteration holds only one chunk's activations.
 */
export async function loopedSearchGraph(spec: SearchGraphSpec & { readonly candidates: Extract<CandidateInput, { kind: 'scales' }> }, chunk: number, points?: number): Promise<Uint8Array> {
  const g = builder(spec);
  const x = cachedInput(g, spec);
  const s = g.input('s', OnnxType.double, ['grid', spec.shapes[0]![1]]);
  const pos = readsPositions(spec.kind) ? positionInputs(g, spec.cfg) : null;
  g.output(await gridLoop(g, spec, x, s, pos, chunk, points === chunk), 'loss', OnnxType.float, ['grid']);
  return g.build('awq_search_loop');
}

/**
 * `loss [G]` in `g`: a `Loop` over the chunks of `chunk` grid points of
 * `s [G, in]`, each chunk's losses on input `x`; with `single` (G is one
 * chunk) the chunk's losses themselves, without the loop.
 */
async function gridLoop(
  g: GraphBuilder,
  spec: SearchGraphSpec & { readonly candidates: Extract<CandidateInput, { kind: 'scales' }> },
  x: string,
  s: string,
  pos: PositionNames | null,
  chunk: number,
  single: boolean,
  made?: readonly string[],
  top: GraphBuilder = g,
  prefix = 'sl_',
): Promise<string> {
  // One iteration: its operators in `g` (no loop to enter once a slot), `made` read where it lies (no gather copying it).
  if (single) return searchLoss(g, spec, x, made ?? candidateSet(g, spec.candidates, s), pos, made !== undefined);
  const body = builder(spec, prefix, top);
  const iter = body.input(`${prefix}iter`, OnnxType.int64, []);
  const cond = body.input(`${prefix}cond`, OnnxType.bool, []);
  let ws: string[];
  if (made) {
    // `made` holds each iteration's candidates behind the weight itself ([G / chunk, chunk + 1, in, out]): one gather.
    ws = made.map((all) => body.op('Gather', [all, iter], { axis: 0 }));
  } else {
    const start = body.op('Mul', [hostIndex(body, iter), body.i64([chunk])]);
    const end = body.op('Add', [start, body.i64([chunk])]);
    ws = candidateSet(body, spec.candidates, body.op('Slice', [s, start, end, body.i64([0])]));
  }
  const loss = await searchLoss(body, spec, x, ws, pos, made !== undefined);
  // The condition passes through as it came (an Identity would run on the device, a round trip every iteration).
  body.passOutput(cond, OnnxType.bool, []);
  body.output(loss, `${prefix}loss`, OnnxType.float, [chunk]);
  const trips = g.op('Div', [g.op('Gather', [g.op('Shape', [s]), g.i64(0)], { axis: 0 }), g.i64(chunk)]);
  const [losses] = g.opMulti('Loop', [trips, g.constRaw(OnnxType.bool, [], Uint8Array.of(1))], 1, { body: { graph: body, name: `awq_grid_loop_${prefix}` } });
  return g.op('Reshape', [losses!, g.i64([-1])]);
}

/**
 * Candidates `w [G + 1, out, in]` (slice 0 the weight itself) laid out as a
 * grid loop reads them: `[G / chunk, chunk + 1, in, out]`, each iteration's
 * points behind a copy of the weight and transposed, made once a run so that
 * an iteration takes its own with one gather (no slicing, concatenating or
 * transposing an iteration, and no more memory than its slice); with
 * `single` (G is one chunk) `[G + 1, in, out]`, read as it is.
 */
function byIteration(g: GraphBuilder, w: string, chunk: number, [rows, cols]: readonly [number, number], single: boolean): string {
  const t = g.op('Transpose', [w], { perm: [0, 2, 1] });
  if (single) return t;
  const points = g.op('Reshape', [g.op('Slice', [t, g.i64([1]), g.i64([TO_END]), g.i64([0])]), g.i64([-1, chunk, cols, rows])]);
  const weight = g.op('Unsqueeze', [g.op('Slice', [t, g.i64([0]), g.i64([1]), g.i64([0])]), g.i64([0])]);
  const iterations = g.op('Shape', [points], { start: 0, end: 1 });
  return g.op('Concat', [g.op('Expand', [weight, g.op('Concat', [iterations, g.i64([1, cols, rows])], { axis: 0 })]), points], { axis: 1 });
}

/** Every balance layer's candidates `[P, out, in]` from scale rows `s`, pseudo-quantized in the graph. */
function candidateSet(g: GraphBuilder, cand: Extract<CandidateInput, { kind: 'scales' }>, s: string): string[] {
  return cand.balance.map((w, n) => candidateWeights(g, w, s, cand.quantizers[n]!));
}

/** `loss [P − 1]` of candidates `ws` on cached input `x` (see the module comment); `inOut`: the candidates are stored `[P, in, out]`. */
async function searchLoss(g: GraphBuilder, spec: SearchGraphSpec, x: string, ws: readonly string[], pos: PositionNames | null, inOut = false): Promise<string> {
  const { cfg, shapes, weights, kind } = spec;
  const lowW = inOut && madeLow(spec);
  const lin = (input: string, w: string, bias?: Float32Array): string => batchedLinear(g, input, w, bias, inOut, lowW);
  const k = shapes[0]![1];
  let out: string;
  if (kind === 'linear') {
    out = lin(x, ws[0]!, weights.biases[0]);
  } else if (kind === 'moe') {
    const moe = weights.moe!;
    const xf = g.op('Reshape', [x, g.i64([-1, k])]);
    const logits = linear(g, xf, moe.router, moe.routerBias);
    const r = moe.routing;
    const routing =
      r.kind === 'softmax'
        ? softmaxTopK(g, logits, r.topK, r.normalize, r.keepFloat32)
        : r.kind === 'topk-softmax'
          ? topKSoftmax(g, logits, r.topK)
          : r.kind === 'sparsemixer'
            ? sparseMixer(g, logits, r.jitterEps)
            : r.kind === 'input-sigmoid'
              ? sigmoidTopK(g, logits, r.topK)
              : sigmoidGroupTopK(g, logits, r.bias, r.raw, r.experts);
    const proj = (l: ParentLinear): string => (typeof l === 'number' ? lin(xf, ws[l]!) : linear(g, xf, l));
    let sum: string | null = null;
    moe.experts.forEach((e, i) => {
      const weight = g.op('Slice', [routing.weights, g.i64([i]), g.i64([i + 1]), g.i64([1])]);
      const inputScaled = r.kind === 'input-sigmoid';
      const xe = inputScaled ? lowOp(g, 'Mul', [xf, weight]) : xf;
      const gate = lin(xe, ws[e.gate]!, e.gateBias);
      const up = lin(xe, ws[e.up]!, e.upBias);
      const y = linear(g, moe.activation === 'gpt-oss' ? interleavedSwiglu(g, gate, up, shapes[e.gate]![0]) : lowOp(g, 'Mul', [silu(g, gate), up]), e.down, e.downBias);
      // In the low dtype each weighted output and each sum in expert order rounded (moe.ts: combineExperts).
      const weighted = inputScaled ? y : lowOp(g, 'Mul', [y, weight]);
      sum = sum === null ? weighted : lowOp(g, 'Add', [sum, weighted]);
    });
    out = sum!;
    if (moe.shared) {
      const sh = moe.shared;
      let y = linear(g, lowOp(g, 'Mul', [silu(g, proj(sh.gate)), proj(sh.up)]), sh.down);
      if (sh.sigmoidGate) y = lowOp(g, 'Mul', [lowOp(g, 'Sigmoid', [linear(g, xf, sh.sigmoidGate)]), y]);
      out = lowOp(g, 'Add', [out, y]);
    }
  } else if (kind === 'mlp') {
    const gate = lin(x, ws[0]!, weights.biases[0]);
    const up = lin(x, ws[1]!, weights.biases[1]);
    out = linear(g, lowOp(g, 'Mul', [silu(g, gate), up]), weights.out!, weights.outBias);
  } else if (kind === 'mla') {
    const mla = weights.mla!;
    const { inp, seq } = attentionInputs(g, x, pos!);
    const fold = (n: number): string => foldSlices(g, lin(x, ws[n]!, weights.biases[n]), seq, shapes[n]![0]);
    out = await mlaFromProjections(g, mla.reader, cfg, mla.raw, mla.attention, { q: fold(0), direct: mla.direct, compressed: fold(1) }, inp);
  } else {
    const { inp, seq } = attentionInputs(g, x, pos!);
    // q/k norms span one head (qwen3) or, olmoe's, the whole projection (before the heads split, then clip_qkv), as llamaAttention.
    const perHead = (n: Float32Array | undefined): boolean => n !== undefined && n.length === cfg.headDim;
    const proj = (n: number, heads: number, norm?: Float32Array): string => {
      let y = foldSlices(g, lin(x, ws[n]!, weights.biases[n]), seq, shapes[n]![0]);
      if (norm && !perHead(norm)) y = rmsNorm(g, y, norm, cfg.eps);
      if (cfg.clipQkv != null) y = g.op('Clip', [y, g.f32(-cfg.clipQkv), g.f32(cfg.clipQkv)]);
      const h = splitHeads(g, y, heads, cfg.headDim);
      return norm && perHead(norm) ? rmsNorm(g, h, norm, cfg.eps) : h;
    };
    let q = proj(0, cfg.heads, weights.qNorm);
    let kk = proj(1, cfg.kvHeads, weights.kNorm);
    const v = proj(2, cfg.kvHeads);
    q = partialRotary(g, q, inp.cos, inp.sin, cfg.rope.dim, cfg.headDim);
    kk = partialRotary(g, kk, inp.cos, inp.sin, cfg.rope.dim, cfg.headDim);
    const att = weights.sinks
      ? sinkAttend(g, q, kk, v, inp.mask, weights.sinks, cfg)
      : attention(g, q, kk, v, inp.mask, cfg.heads, cfg.kvHeads, cfg.headDim, cfg.headDim, cfg.attentionScale ?? cfg.headDim ** -0.5, spec.window);
    out = linear(g, att, weights.out!, weights.outBias);
  }
  // [P, everything else]: slice 0 is the reference output.
  const flat = g.op('Reshape', [out, g.op('Concat', [g.op('Slice', [g.op('Shape', [ws[0]!]), g.i64([0]), g.i64([1])]), g.i64([-1])], { axis: 0 })]);
  const ref = g.op('Slice', [flat, g.i64([0]), g.i64([1]), g.i64([0])]);
  const rest = g.op('Slice', [flat, g.i64([1]), g.i64([TO_END]), g.i64([0])]);
  // In the low dtype: the difference and its square rounded, their float32 sum rounded once (mse_loss on bf16 tensors).
  const diff = lowOp(g, 'Sub', [rest, ref]);
  const sum = g.op('ReduceSum', [lowOp(g, 'Mul', [diff, diff]), g.i64([1])], { keepdims: 0 });
  return graphPrecision(g) ? rounded(g, sum) : sum;
}

/**
 * Builds what a stacked search replays before its parent: the cached
 * input's value in `g` given the slot's layer inputs (the layer itself
 * built into `g` up to that input, as pass A built it).
 */
export type SearchPrefix = (g: RecordingBuilder, inputs: LayerInputs) => Promise<string>;

/**
 * The search graph over the layer's input stack instead of a cached input:
 * an outer `Loop` over the stack's slots (inputs `stack`, `shape` and the
 * position tables, see layer-loop.ts) rebuilds each slot's parent input with
 * `prefix` — the unmodified layer up to that input, as pass A computed it —
 * and runs the grid on it as {@link loopedSearchGraph} does: `loss [S, G]`,
 * each slot's losses (summed over the slots where they are read, in the
 * order llm-compressor adds its batches'). `precompute` makes every
 * grid point's candidate weights once, before the slots (memory for all
 * points at once, in the low dtype where the MatMuls run in it); without
 * it the chunks of points are the outer loop and the slots the inner one,
 * each chunk's candidates made once for all slots. `points` (the rows of
 * its scales, input `s0`) equal to `chunk` leaves the grid loop out. Nothing per token leaves
 * the device: pass A returns only the activation sums, and one run per
 * stack moves the hidden states in once per mapping.
 */
export async function stackedSearchGraph(
  spec: SearchGraphSpec & { readonly candidates: Extract<CandidateInput, { kind: 'scales' }> },
  chunk: number,
  rows: number,
  prefix: SearchPrefix,
  precompute: boolean,
  dtype: StackDtype,
  points: number,
): Promise<Uint8Array> {
  // Every point's candidates made once for all slots, then each slot runs the grid on them: a joint search of one mapping.
  if (precompute) return jointSearchGraph([{ spec, chunk, points }], rows, async (g, inputs) => [await prefix(g, inputs)], dtype);
  // Where every point's candidates would not fit, the points are the outer loop: each chunk's candidates made once for
  // all slots (each slot's parent input rebuilt once per chunk, a fraction of a layer), not once per slot and chunk.
  const g = builder(spec);
  const stack = stackInputs(g, rows, spec.cfg.hidden, dtype);
  const s = g.input('s0', OnnxType.double, ['grid', spec.shapes[0]![1]]);
  const slotCount = g.op('Gather', [g.op('Shape', [stack]), g.i64(0)], { axis: 0 });
  const outer = builder(spec, 'po_', g);
  const iter = outer.input('po_iter', OnnxType.int64, []);
  const cond = outer.input('po_cond', OnnxType.bool, []);
  const start = outer.op('Mul', [hostIndex(outer, iter), outer.i64([chunk])]);
  const rowsOf = outer.op('Slice', [s, start, outer.op('Add', [start, outer.i64([chunk])]), outer.i64([0])]);
  const candidates = candidateSet(outer, spec.candidates, rowsOf).map((w) => outer.op('Transpose', [kept(outer, spec, w)], { perm: [0, 2, 1] }));
  const perSlot = await slotLoop(outer, g, spec, dtype, slotCount, chunk, async (slots, inputs, pos) => searchLoss(slots, spec, await prefix(slots, inputs), candidates, pos, true));
  outer.passOutput(cond, OnnxType.bool, []);
  outer.output(perSlot, 'po_loss', OnnxType.float, ['slots', chunk]);
  const trips = g.op('Div', [g.op('Gather', [g.op('Shape', [s]), g.i64(0)], { axis: 0 }), g.i64(chunk)]);
  const [byChunk] = g.opMulti('Loop', [trips, g.constRaw(OnnxType.bool, [], Uint8Array.of(1))], 1, { body: { graph: outer, name: 'awq_point_loop' } });
  // [chunks, slots, chunk] → [slots, grid].
  g.output(g.op('Reshape', [g.op('Transpose', [byChunk!], { perm: [1, 0, 2] }), g.i64([0, -1])]), 'loss', OnnxType.float, ['slots', 'grid']);
  return g.build('awq_search_stack');
}

/**
 * A `Loop` in `parent` over the stack's `slotCount` slots: each slot's
 * losses from `lossOf` given its layer inputs (which rebuilds the parent
 * input from them: the unmodified layer up to it, as pass A built it),
 * `[slots, width]`.
 */
async function slotLoop(
  parent: GraphBuilder,
  top: GraphBuilder,
  spec: SearchGraphSpec,
  dtype: StackDtype,
  slotCount: string,
  width: string | number,
  lossOf: (slots: RecordingBuilder, inputs: LayerInputs, pos: PositionNames | null) => Promise<string>,
): Promise<string> {
  const slots = new RecordingBuilder('ss_');
  setGraphPrecision(slots, spec.precision);
  if (spec.fusePlainAttention && !spec.precision) setPlainFusedAttention(slots);
  feedsLike(slots, spec, top);
  // The layer is built whole; only what leads to the parent input runs.
  slots.pruneUnused();
  const iter = slots.input('ss_iter', OnnxType.int64, []);
  const cond = slots.input('ss_cond', OnnxType.bool, []);
  const { inputs } = stackSlot(slots, iter, spec.cfg.hidden, dtype);
  const pos = { cos: inputs.cos, sin: inputs.sin, mask: inputs.mask };
  const losses = await lossOf(slots, inputs, readsPositions(spec.kind) ? pos : null);
  slots.passOutput(cond, OnnxType.bool, []);
  slots.declare(losses, 'ss_loss', OnnxType.float, [width]);
  const [perSlot] = parent.opMulti('Loop', [slotCount, parent.constRaw(OnnxType.bool, [], Uint8Array.of(1))], 1, { body: { graph: slots, name: 'awq_slot_loop' } });
  return perSlot!;
}

/** One mapping's part of a {@link jointSearchGraph}: its spec, its chunk and its padded grid (the rows of its scales). */
export interface JointPart {
  readonly spec: SearchGraphSpec & { readonly candidates: Extract<CandidateInput, { kind: 'scales' }> };
  readonly chunk: number;
  readonly points: number;
}

/**
 * The stacked search of one layer's mappings in one graph (see
 * {@link stackedSearchGraph}, with every point's candidates made up front):
 * inputs `s0, s1, …` (each part's scale rows), one loop over the stack's
 * slots that rebuilds the layer once a slot with `prefix` (the parts'
 * parent inputs, in order) and evaluates each part's grid on its own input;
 * `loss [S, ΣG]`, each slot's row holding the parts' losses in turn. The
 * parts share their fed weights (their specs name one set) and precision.
 */
export async function jointSearchGraph(parts: readonly JointPart[], rows: number, prefix: (g: RecordingBuilder, inputs: LayerInputs) => Promise<string[]>, dtype: StackDtype): Promise<Uint8Array> {
  const first = parts[0]!.spec;
  const g = builder(first);
  const stack = stackInputs(g, rows, first.cfg.hidden, dtype);
  const made = parts.map((p, i) => {
    const s = g.input(`s${i}`, OnnxType.double, [`grid${i}`, p.spec.shapes[0]![1]]);
    const single = p.points === p.chunk;
    return { s, single, made: candidateSet(g, p.spec.candidates, s).map((w, n) => byIteration(g, kept(g, p.spec, w), p.chunk, p.spec.shapes[n]!, single)) };
  });
  const slotCount = g.op('Gather', [g.op('Shape', [stack]), g.i64(0)], { axis: 0 });
  const perSlot = await slotLoop(g, g, first, dtype, slotCount, 'grid', async (slots, inputs) => {
    const xs = await prefix(slots, inputs);
    const pos = { cos: inputs.cos, sin: inputs.sin, mask: inputs.mask };
    const losses: string[] = [];
    for (const [i, p] of parts.entries()) {
      const m = made[i]!;
      losses.push(await gridLoop(slots, p.spec, xs[i]!, m.s, readsPositions(p.spec.kind) ? pos : null, p.chunk, m.single, m.made, g, `sl${i}_`));
    }
    return losses.length === 1 ? losses[0]! : slots.op('Concat', losses, { axis: 0 });
  });
  g.output(perSlot, 'loss', OnnxType.float, ['slots', 'grid']);
  return g.build('awq_search_stack');
}
