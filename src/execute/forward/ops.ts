/**
 * Building blocks of decoder graphs, written as transformers computes them in
 * float32, or in the checkpoint's dtype where the graph's precision says so
 * (see precision.ts: each result rounded where transformers rounds it):
 * RMSNorm, Linear (weights as initializers, or inputs where the graph feeds
 * its weights), SiLU, rotary embedding with
 * `rotate_half`, causal attention with grouped KV heads.
 */
import { decodeBf16Bits } from '../onnx/bf16-bits.js';
import { OnnxType, type FileBytes, type GraphBuilder } from '../onnx/graph-builder.js';
import type { DenseMatrix } from './dequantize.js';
import { quantizedInput } from './input-quantizer.js';
import { flashExp } from './fast-exp.js';
import { bf16Bytes, f16Bytes } from '../dtypes.js';
import { fusedAttention, graphPrecision, lowOp, matmul, matmulBias, multiHeadAttention, onnxType, plainFusedAttention, rounded, roundTo, torchCpuKernels, type LowPrecision } from './precision.js';

/** Raw bytes of a float32 array (no copy). */
export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A float32 weight of the given shape: an initializer, or an input where the graph feeds its weights. */
export function weightConst(g: GraphBuilder, data: Float32Array, dims: readonly number[]): string {
  return g.weight(OnnxType.float, dims, f32Bytes(data));
}

/**
 * A bf16 checkpoint weight `[rows, cols]` as stored, as a value of `type`:
 * a bfloat16 initializer, or where the graph feeds its weights, the stored
 * bits as a uint16 input decoded in the graph (onnxruntime-node feeds no
 * bfloat16 tensors), exactly the same values.
 */
function storedBf16(g: GraphBuilder, w: Bf16Matrix, type: 'bfloat16' | 'float'): string {
  if (!g.feedsWeights) {
    const c = g.constRaw(OnnxType.bfloat16, [w.rows, w.cols], w.bf16);
    return type === 'float' ? g.op('Cast', [c], { to: OnnxType.float }) : c;
  }
  // In a loop body the decoding runs once per run, before the loop (GraphBuilder.hoistInto), not at every iteration.
  return g.invariant((o) => {
    const values = decodeBf16Bits(o, o.weight(OnnxType.uint16, [w.rows, w.cols], w.bf16));
    return type === 'float' ? values : o.op('Cast', [values], { to: OnnxType.bfloat16 });
  });
}

/**
 * A norm's weight vector rounded to the graph's low dtype, as a float32
 * value (`rounded`). Where the graph runs natively in that dtype and holds
 * its weights, the constant is stored in it: narrowed, the graph reads it
 * as it is, where a float32 constant would be cast at every run (constant
 * folding is off on the card).
 */
function roundedVector(g: GraphBuilder, data: Float32Array): string {
  const low = graphPrecision(g);
  if (!low?.native || g.feedsWeights) return rounded(g, weightConst(g, data, [data.length]));
  const values = data.map(roundTo(low.dtype));
  const bytes = low.dtype === 'bfloat16' ? bf16Bytes(values) : f16Bytes(values);
  return g.op('Cast', [g.constRaw(onnxType(low), [values.length], bytes)], { to: OnnxType.float });
}

/**
 * `weight * x / sqrt(mean(x², last axis) + eps)`. In the low dtype, as
 * LlamaRMSNorm: the normalization in float32, cast back to the input's dtype,
 * then the product with the (low-dtype) weight rounded; with
 * `weightInFloat32` (GptOssRMSNorm) the weight multiplies the float32
 * normalization and only the product is cast down. On CUDA a decoder
 * norm (`fusable`: the hidden state's, not a head's or a latent's) normalizes
 * in one fused kernel (see {@link LowPrecision.fusedNorms}).
 */
export function rmsNorm(g: GraphBuilder, x: string, weight: Float32Array, eps: number, fusable = false, weightInFloat32 = false): string {
  const low = graphPrecision(g);
  if (fusable && !weightInFloat32 && low?.native && low.fusedNorms) {
    // One kernel: x (a value of the low dtype) normalized in float32 and rounded once (a unit scale changes nothing), then the rounded weight product.
    const type = onnxType(low);
    const ones = g.constRaw(type, [weight.length], new Uint8Array(new Uint16Array(weight.length).fill(type === OnnxType.bfloat16 ? 0x3f80 : 0x3c00).buffer));
    const normed = g.op('SimplifiedLayerNormalization', [g.op('Cast', [x], { to: type }), ones], { axis: -1, epsilon: { float: eps } });
    return lowOp(g, 'Mul', [roundedVector(g, weight), g.op('Cast', [normed], { to: OnnxType.float })]);
  }
  const variance = g.op('ReduceMean', [g.op('Mul', [x, x]), g.i64([-1])], { keepdims: 1 });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [variance, g.f32(eps)])])]);
  if (weightInFloat32) return lowOp(g, 'Mul', [weightConst(g, weight, [weight.length]), g.op('Mul', [x, inv])]);
  return lowOp(g, 'Mul', [roundedVector(g, weight), rounded(g, g.op('Mul', [x, inv]))]);
}

/**
 * `nn.LayerNorm`: `(x - mean) / sqrt(var + eps) * weight + bias` over the last axis (biased variance).
 * On a bf16 input torch computes it all in float32 with the (bf16) weight and bias, rounding the output once.
 */
export function layerNorm(g: GraphBuilder, x: string, weight: Float32Array, bias: Float32Array, eps: number): string {
  const centered = g.op('Sub', [x, g.op('ReduceMean', [x, g.i64([-1])], { keepdims: 1 })]);
  const variance = g.op('ReduceMean', [g.op('Mul', [centered, centered]), g.i64([-1])], { keepdims: 1 });
  const normed = g.op('Div', [centered, g.op('Sqrt', [g.op('Add', [variance, g.f32(eps)])])]);
  return rounded(g, g.op('Add', [g.op('Mul', [normed, rounded(g, weightConst(g, weight, [weight.length]))]), rounded(g, weightConst(g, bias, [bias.length]))]));
}

/**
 * A `[rows, cols]` bf16 matrix as stored in the checkpoint (raw little-endian
 * bits, or where they lie in the checkpoint file: read straight into the
 * graph bytes when the graph is built), widened inside the graph.
 */
export interface Bf16Matrix {
  readonly bf16: Uint8Array | FileBytes;
  readonly rows: number;
  readonly cols: number;
}

/**
 * `x @ W.T (+ b)` for a `[out, in]` weight. The weight goes into the graph as
 * stored (bf16 bits or float32, `[out, in]`): a float32 product (or an
 * emulated one of a bf16 weight) reads it transposed itself, behind a Cast
 * that onnxruntime folds into a float32 initializer when the session is
 * created (see {@link productWithStored}); a product that rounds the weight
 * first (emulated, of a float32 weight) reads a folded Transpose of it; on
 * CUDA a bf16 weight goes to the bf16 MatMul as it is. The widening and
 * transposition run in native code, never in JavaScript. A weight carrying
 * an input quantizer (served-model simulation) has its input fake-quantized
 * first.
 */
export function linear(g: GraphBuilder, x: string, w: DenseMatrix | Bf16Matrix, bias?: Float32Array): string {
  const low = graphPrecision(g);
  const input = quantizedInput(g, x, w);
  const b = bias ? weightConst(g, bias, [bias.length]) : undefined;
  if (low?.native && low.dtype === 'bfloat16' && 'bf16' in w) {
    // On CUDA a bf16 checkpoint weight goes to the bf16 MatMul as stored, never widened.
    const wt = g.op('Transpose', [storedBf16(g, w, 'bfloat16')], { perm: [1, 0] });
    const y = g.op('Cast', [g.op('MatMul', [g.op('Cast', [input], { to: OnnxType.bfloat16 }), wt])], { to: OnnxType.float });
    return b ? lowOp(g, 'Add', [y, rounded(g, b)]) : y;
  }
  // Float32 products, and emulated ones of weights already of the low dtype: the weight as stored, read transposed.
  if (!low || (!low.native && 'bf16' in w)) {
    const y = productWithStored(g, input, w);
    if (!low) return b ? g.op('Add', [y, b]) : y;
    return rounded(g, b ? g.op('Add', [y, rounded(g, b)]) : y);
  }
  const wt = transposedWeight(g, w);
  return b ? matmulBias(g, input, wt, b) : matmul(g, input, wt, true);
}

/** A `[out, in]` weight as a float32 graph value, as stored (widened from bf16 where it is bf16). */
function storedWeight(g: GraphBuilder, w: DenseMatrix | Bf16Matrix): string {
  return 'bf16' in w ? storedBf16(g, w, 'float') : weightConst(g, w.data, [w.rows, w.cols]);
}

/**
 * `x @ W.T` in float32 with the `[out, in]` weight as stored, read
 * transposed by the product itself (FusedMatMul's `transB`): onnxruntime
 * packs the constant for its GEMM when the session is made, where a
 * `Transpose` would first be folded into a transposed copy of every weight
 * (on a 2-core CPU the 1B llama's 22 sessions took 4.1–4.2 s to create
 * against 8.4–9.1 s; the packed weight, so the products, are the same bit
 * for bit).
 */
function productWithStored(g: GraphBuilder, x: string, w: DenseMatrix | Bf16Matrix): string {
  return g.contribOp('FusedMatMul', [x, storedWeight(g, w)], 1, { transB: 1 })[0]!;
}

/** A `[out, in]` weight as a float32 `[in, out]` graph value (widened and transposed by constant folding). */
function transposedWeight(g: GraphBuilder, w: DenseMatrix | Bf16Matrix): string {
  return g.op('Transpose', [storedWeight(g, w)], { perm: [1, 0] });
}

/**
 * `x @ W.T` in float32 whatever the graph's precision: a router that upcasts
 * its input and weight before the product (DeepSeek-V3's, GLM-4's).
 */
export function linearFloat32(g: GraphBuilder, x: string, w: DenseMatrix | Bf16Matrix): string {
  return productWithStored(g, quantizedInput(g, x, w), w);
}

/** `x * sigmoid(x)` (one rounding in the low dtype, as torch's silu; `x / (1 + exp(−x))` as its CPU kernel computes it where the graph asks). */
export function silu(g: GraphBuilder, x: string): string {
  if (torchCpuKernels(g)) return lowOp(g, 'Div', [x, g.op('Add', [g.f32(1), g.op('Exp', [g.op('Neg', [x])])])]);
  return lowOp(g, 'Mul', [x, g.op('Sigmoid', [x])]);
}

/** Elements `[start, end)` of the last axis. */
export function sliceLast(g: GraphBuilder, x: string, start: number, end: number): string {
  return g.op('Slice', [x, g.i64([start]), g.i64([end]), g.i64([-1])]);
}

/**
 * `x * cos + rotate_half(x) * sin` on the last axis of `[…, seq, dim]`; cos/sin are `[seq, dim]`
 * (in the low dtype cast down first, as the rotary embedding returns them, and each op rounded).
 */
export function rotary(g: GraphBuilder, x: string, cos: string, sin: string, dim: number, headsLast = false): string {
  // rotate_half(x)·sin = [x₂, x₁]·[−sin₁, sin₂]: the sign moves onto the (small) table, exactly, and
  // no Neg passes over x. The halves swap through Slices and a Concat, which onnxruntime moves transposes
  // through; heads-last (no transposes around) through one Gather: one pass over x instead of two.
  const half = dim / 2;
  const swapped = headsLast
    ? g.op('Gather', [x, halfSwap(g, dim)], { axis: -1 })
    : g.op('Concat', [sliceLast(g, x, half, dim), sliceLast(g, x, 0, half)], { axis: -1 });
  return lowOp(g, 'Add', [lowOp(g, 'Mul', [x, rounded(g, cos)]), lowOp(g, 'Mul', [swapped, signedSin(g, sin, dim)])]);
}

/** {@link rotary} on the first `dim` of `headDim` channels (partial RoPE), the rest passed through. */
export function partialRotary(g: GraphBuilder, x: string, cos: string, sin: string, dim: number, headDim: number, headsLast = false): string {
  if (dim === headDim) return rotary(g, x, cos, sin, dim, headsLast);
  return g.op('Concat', [rotary(g, sliceLast(g, x, 0, dim), cos, sin, dim, headsLast), sliceLast(g, x, dim, headDim)], { axis: -1 });
}

/** Values made once per graph and key (position tables every layer of a graph reads). */
type PerGraph = WeakMap<GraphBuilder, Map<string, string>>;

/** The value `key` of graph `g` in `store`, made by `make` the first time. */
function oncePerGraph(store: PerGraph, g: GraphBuilder, key: string, make: () => string): string {
  const known = store.get(g) ?? new Map<string, string>();
  store.set(g, known);
  let made = known.get(key);
  if (made === undefined) known.set(key, (made = make()));
  return made;
}

const signedSins: PerGraph = new WeakMap();

/** The sin table (rounded as the rotary embedding returns it) with its first half negated, once per graph, table and width. */
function signedSin(g: GraphBuilder, sin: string, dim: number): string {
  return oncePerGraph(signedSins, g, `${sin}/${dim}`, () => {
    const s = rounded(g, sin);
    return g.op('Concat', [g.op('Neg', [sliceLast(g, s, 0, dim / 2)]), sliceLast(g, s, dim / 2, dim)], { axis: -1 });
  });
}

const halfSwaps: PerGraph = new WeakMap();

/** The indices `[dim/2 … dim−1, 0 … dim/2−1]`, once per graph and width. */
function halfSwap(g: GraphBuilder, dim: number): string {
  return oncePerGraph(halfSwaps, g, String(dim), () => g.i64(Array.from({ length: dim }, (_, i) => (i + dim / 2) % dim)));
}

/** `[B, T, heads·dim]` → `[B, heads, T, dim]`. */
export function splitHeads(g: GraphBuilder, x: string, heads: number, dim: number): string {
  return g.op('Transpose', [splitHeadsLast(g, x, heads, dim)], { perm: [0, 2, 1, 3] });
}

/**
 * `[B, T, heads·dim]` → `[B, T, heads, dim]`: the heads split where they
 * lie, the layout the fused attention kernel reads (no copy), where
 * {@link splitHeads}' transpose is a copy on each side of the kernel.
 */
export function splitHeadsLast(g: GraphBuilder, x: string, heads: number, dim: number): string {
  return g.op('Reshape', [x, g.i64([0, 0, heads, dim])]);
}

const headTables: PerGraph = new WeakMap();

/** A `[seq, dim]` position table as `[seq, 1, dim]`, broadcasting over the heads of `[B, T, heads, dim]`; once per graph and table. */
export function perHeadTable(g: GraphBuilder, table: string): string {
  return oncePerGraph(headTables, g, table, () => g.op('Unsqueeze', [table, g.i64([1])]));
}

/** Whether {@link attention} runs as onnxruntime's fused kernel for these arguments (and so may take heads-last inputs). */
export function fusesAttention(g: GraphBuilder, window: number | null | undefined, keyDim: number, valueDim: number): boolean {
  return window !== undefined && keyDim === valueDim && (fusedAttention(g) || (window === null && plainFusedAttention(g)));
}

/** What {@link attention} may be given besides its tensors. */
export interface AttentionOptions {
  /** q and k not rotated yet: the fused kernel rotates them where it can, {@link rotary} first otherwise. */
  readonly rope?: Rope;
  /** The fused kernel's length inputs, shared by the layers of a graph ({@link AttentionLengths}). */
  readonly lengths?: () => AttentionLengths;
  /** q, k and v are `[B, T, heads, D]` ({@link splitHeadsLast}); only where {@link fusesAttention}. */
  readonly headsLast?: boolean;
}

/**
 * Scaled dot-product attention over `[B, H, T, D]` queries and `[B, KV, T, D]`
 * keys/values (KV heads repeated H/KV times, as `repeat_kv` does), plus an
 * additive `[T, T]` mask; returns `[B, T, H·Dv]`.
 *
 * In the low dtype as transformers' default attention (sdpa) computes it on
 * a bf16/fp16 model, the flash kernels of torch on the CPU and on CUDA: the
 * scores `q·kᵀ` accumulate in float32 and are scaled and masked in float32,
 * `exp(s − max)` is cast down for the product with the values (float32
 * accumulation), and that product divided by the float32 sum of the exps is
 * the one rounded result. (Eager attention would round the scores op by op.)
 * Where the value heads are narrower than the keys (MLA) torch's sdpa runs
 * its math path instead: all in float32, the output rounded once.
 *
 * `window` says what `mask` holds: null the plain causal mask, a number a
 * causal mask that also hides keys `window` or more positions back; left
 * out, the mask is applied as given. When the mask is one of those and the
 * graph fuses its attention ({@link groupQueryAttention}), the mask is not
 * read.
 *
 * With `rope`, `q` and `k` are not rotated yet: the fused kernel rotates
 * them where it can (the whole head, see {@link fusedRotary}), otherwise
 * {@link rotary} does first.
 */
export function attention(
  g: GraphBuilder,
  q: string,
  k: string,
  v: string,
  mask: string,
  heads: number,
  kvHeads: number,
  keyDim: number,
  valueDim: number,
  scaling: number,
  window?: number | null,
  options: AttentionOptions = {},
): string {
  const { rope, lengths, headsLast = false } = options;
  const fused = fusesAttention(g, window, keyDim, valueDim);
  if (headsLast && !fused) throw new Error('heads-last attention inputs are for the fused kernel only');
  // The kernel rotates whole heads whose width is a multiple of 16, up to 256.
  if (fused && rope && rope.dim === keyDim && keyDim % 16 === 0 && keyDim <= 256) return groupQueryAttention(g, q, k, v, heads, kvHeads, keyDim, scaling, window!, rope, headsLast, lengths);
  if (rope) {
    const table = (t: string): string => (headsLast ? perHeadTable(g, t) : t);
    q = rotary(g, q, table(rope.cos), table(rope.sin), rope.dim, headsLast);
    k = rotary(g, k, table(rope.cos), table(rope.sin), rope.dim, headsLast);
  }
  if (fused) return fusedCausalAttention(g, q, k, v, heads, kvHeads, keyDim, scaling, window!, undefined, headsLast, lengths);
  const rep = heads / kvHeads;
  const repeat = (x: string, dim: number): string =>
    rep === 1 ? x : g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [x, g.i64([2])]), g.i64([1, 1, rep, 1, 1])]), g.i64([0, heads, -1, dim])]);
  const kt = g.op('Transpose', [repeat(k, keyDim)], { perm: [0, 1, 3, 2] });
  const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, kt]), g.f32(scaling)]), mask]);
  let out: string;
  if (graphPrecision(g) && keyDim !== valueDim) {
    // Value heads narrower than the keys (MLA): torch's sdpa takes its math path, in float32 with one rounding.
    out = rounded(g, g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), repeat(v, valueDim)]));
  } else if (graphPrecision(g)) {
    const shifted = g.op('Sub', [scores, g.op('ReduceMax', [scores, g.i64([-1])], { keepdims: 1 })]);
    const exps = torchCpuKernels(g) ? flashExp(g, shifted) : g.op('Exp', [shifted]);
    const sum = g.op('ReduceSum', [exps, g.i64([-1])], { keepdims: 1 });
    out = rounded(g, g.op('Div', [g.op('MatMul', [rounded(g, exps), repeat(v, valueDim)]), sum]));
  } else out = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), repeat(v, valueDim)]);
  return g.op('Reshape', [g.op('Transpose', [out], { perm: [0, 2, 1, 3] }), g.i64([0, 0, heads * valueDim])]);
}

/**
 * Causal attention within chunks of `chunk` positions (Llama 4's
 * `chunked_attention`: a query sees the keys of its own chunk up to itself)
 * as the fused kernel: the sequence, zero-padded at its end to whole chunks,
 * becomes a batch of chunk-long sequences, each attended causally, and the
 * padding is cut off again. The padded keys come after every real query of
 * their chunk, so the causal kernel never reads them: the same attention as
 * the chunk-restricted mask, without `[T, T]` scores. Returns `[B, T, H·D]`.
 */
export function chunkedAttention(g: GraphBuilder, q: string, k: string, v: string, heads: number, kvHeads: number, dim: number, scaling: number, chunk: number): string {
  const shape = g.op('Shape', [q]);
  const seq = g.op('Gather', [shape, g.i64([2])], { axis: 0 });
  // [B, n, T', D] → [B·T'/chunk, n, chunk, D]: each chunk a sequence of its own.
  const chunks = (x: string, n: number): string =>
    g.op('Reshape', [g.op('Transpose', [g.op('Reshape', [padToMultiple(g, x, chunk), g.i64([0, n, -1, chunk, dim])])], { perm: [0, 2, 1, 3, 4] }), g.i64([-1, n, chunk, dim])]);
  const out = fusedCausalAttention(g, chunks(q, heads), chunks(k, kvHeads), chunks(v, kvHeads), heads, kvHeads, dim, scaling, null);
  const whole = g.op('Reshape', [out, g.op('Concat', [g.op('Gather', [shape, g.i64([0])], { axis: 0 }), g.i64([-1, heads * dim])], { axis: 0 })]);
  return g.op('Slice', [whole, g.i64([0]), seq, g.i64([1])]);
}

/**
 * `x` zero-padded at the end of axis `axis` (the sequence of `[B, heads, T, …]`)
 * to a multiple of `multiple`. The zeros are joined by a `Concat`, whose
 * output keeps the other dims for shape inference, where a `Pad`'s loses them
 * all (and onnxruntime plans buffers of unknown shape at a cost, see
 * gated-delta-net.ts).
 */
export function padToMultiple(g: GraphBuilder, x: string, multiple: number, axis = 2): string {
  const shape = g.op('Shape', [x]);
  const length = g.op('Slice', [shape, g.i64([axis]), g.i64([axis + 1])]);
  const pad = g.op('Mod', [g.op('Sub', [g.i64([multiple]), g.op('Mod', [length, g.i64([multiple])])]), g.i64([multiple])]);
  const zerosShape = g.op('Concat', [g.op('Slice', [shape, g.i64([0]), g.i64([axis])]), pad, g.op('Slice', [shape, g.i64([axis + 1]), g.i64([2 ** 62])])], { axis: 0 });
  return g.op('Concat', [x, g.op('Expand', [g.f32(0), zerosShape])], { axis });
}

/** A rotary embedding left to the attention: the `[seq, dim]` cos/sin tables and the rotated width. */
export interface Rope {
  readonly cos: string;
  readonly sin: string;
  readonly dim: number;
}

/**
 * GroupQueryAttention's length inputs for a batch of whole sequences:
 * `seqlensK` `[B]` int32, T − 1 for each (every sequence holds all T keys),
 * and `total` the length T (an int32 scalar), from the shape of `x` (batch
 * on axis 0, sequence on `seqAxis`). The kernel reads `seqlensK` on the
 * device: made once for a graph of several layers, it crosses to the card
 * once a run, where a copy per layer would wait for the card each time.
 */
export interface AttentionLengths {
  readonly seqlensK: string;
  readonly total: string;
}

/** {@link AttentionLengths} from the shape of `x`. */
export function attentionLengths(g: GraphBuilder, x: string, seqAxis: number): AttentionLengths {
  const shape = g.op('Shape', [x]);
  const total = g.op('Cast', [g.op('Gather', [shape, g.i64(seqAxis)], { axis: 0 })], { to: OnnxType.int32 });
  const seqlensK = g.op('Expand', [g.op('Sub', [total, g.constRaw(OnnxType.int32, [], Uint8Array.of(1, 0, 0, 0))]), g.op('Gather', [shape, g.i64([0])], { axis: 0 })]);
  return { seqlensK, total };
}

/**
 * Causal attention as one of onnxruntime's fused kernels, with
 * {@link groupQueryAttention}'s arguments: plain causal attention (no window, no
 * `rope`) as {@link multiHeadCausalAttention} where the graph's precision
 * says so ({@link LowPrecision.multiHeadAttention}), GroupQueryAttention
 * otherwise.
 */
function fusedCausalAttention(...args: Parameters<typeof groupQueryAttention>): string {
  const [g, q, k, v, heads, kvHeads, dim, scaling, window, rope, headsLast = false] = args;
  if (window === null && !rope && (multiHeadAttention(g) || plainFusedAttention(g))) return multiHeadCausalAttention(g, q, k, v, heads, kvHeads, dim, scaling, headsLast);
  return groupQueryAttention(...args);
}

/** `[B, n, T, D]` (heads-last: `[B, T, n, D]`) as the fused kernels read it: `[B, T, n·D]`, in the graph's low dtype where it runs natively. */
function kernelInput(g: GraphBuilder, x: string, n: number, dim: number, headsLast: boolean): string {
  return toKernelType(g, g.op('Reshape', [headsFirst(g, x, headsLast), g.i64([0, 0, n * dim])]));
}

/** `[B, n, T, D]` as `[B, T, n, D]`; heads-last values as they are. */
function headsFirst(g: GraphBuilder, x: string, headsLast: boolean): string {
  return headsLast ? x : g.op('Transpose', [x], { perm: [0, 2, 1, 3] });
}

/** `x` in the dtype a fused kernel computes in: the graph's low one where it runs natively, else as it is. */
function toKernelType(g: GraphBuilder, x: string): string {
  const low = graphPrecision(g);
  return low?.native ? g.op('Cast', [x], { to: onnxType(low) }) : x;
}

/** A fused kernel's output as the graph's float32 value. */
function fromKernelType(g: GraphBuilder, out: string): string {
  return graphPrecision(g)?.native ? g.op('Cast', [out], { to: OnnxType.float }) : out;
}

/**
 * Causal attention of `[B, H, T, D]` queries on `[B, KV, T, D]` keys and
 * values (`[B, T, H, D]` and `[B, T, KV, D]` with `headsLast`) as onnxruntime's GroupQueryAttention (contrib domain): one kernel
 * that never materialises the scores (flash attention for bf16/fp16 on
 * CUDA), with the KV heads shared by groups of queries as `repeat_kv`
 * shares them. A window of w keeps keys less than w positions back
 * (`local_window_size` w). In a native low-precision graph the kernel
 * computes in the low dtype as torch's flash sdpa does: scores and softmax
 * in float32, the probabilities rounded for the product with the values,
 * the output rounded once; otherwise in float32.
 * With `rope` the kernel also rotates the queries and keys (the whole head,
 * positions 0…T−1): each element `x·cos ± x'·sin` in float32, rounded once.
 * Returns `[B, T, H·D]`.
 */
export function groupQueryAttention(
  g: GraphBuilder,
  q: string,
  k: string,
  v: string,
  heads: number,
  kvHeads: number,
  dim: number,
  scaling: number,
  window: number | null,
  rope?: Rope,
  headsLast = false,
  lengths: () => AttentionLengths = () => attentionLengths(g, q, headsLast ? 1 : 2),
): string {
  const { seqlensK, total: seq } = lengths();
  // The kernel's cos/sin caches are `[positions, dim / 2]`: the first half of each table row (rotate_half's rows repeat it), cast as the tables are.
  const cache = (table: string): string => toKernelType(g, sliceLast(g, table, 0, dim / 2));
  const rotation = rope ? [cache(rope.cos), cache(rope.sin)] : [];
  const merged = (x: string, n: number): string => kernelInput(g, x, n, dim, headsLast);
  const [out] = g.contribOp('GroupQueryAttention', [merged(q, heads), merged(k, kvHeads), merged(v, kvHeads), '', '', seqlensK, seq, ...rotation], 3, {
    num_heads: heads,
    kv_num_heads: kvHeads,
    scale: { float: scaling },
    ...(window === null ? {} : { local_window_size: window }),
    ...(rope ? { do_rotary: 1, rotary_interleaved: 0 } : {}),
  });
  return fromKernelType(g, out!);
}

/**
 * Plain causal attention (no window; q and k rotated already), inputs and
 * output as {@link groupQueryAttention}'s, as onnxruntime's
 * MultiHeadAttention on the KV heads repeated in place (one `Expand` each,
 * as `repeat_kv`; none where each query head has its own): on the card the
 * same flash kernel, without GroupQueryAttention's copy of q, k and v into
 * its cache layout, and no length inputs.
 */
export function multiHeadCausalAttention(g: GraphBuilder, q: string, k: string, v: string, heads: number, kvHeads: number, dim: number, scaling: number, headsLast = false): string {
  const repeated = (x: string): string =>
    kvHeads === heads
      ? kernelInput(g, x, heads, dim, headsLast)
      : g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [toKernelType(g, headsFirst(g, x, headsLast)), g.i64([3])]), g.i64([1, 1, 1, heads / kvHeads, 1])]), g.i64([0, 0, heads * dim])]);
  const [out] = g.contribOp('MultiHeadAttention', [kernelInput(g, q, heads, dim, headsLast), repeated(k), repeated(v)], 1, { num_heads: heads, scale: { float: scaling }, unidirectional: 1 });
  return fromKernelType(g, out!);
}
