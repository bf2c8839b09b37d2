/**
 * The precision layer graphs compute in. `fp32` is transformers on a model
 * loaded in float32 (every op in float32, the parity references). `bf16` is
 * transformers on the model in its checkpoint's dtype (bfloat16, or float16
 * where config.json says so), as llm-compressor calibrates it: every op's
 * result is rounded to that dtype where transformers rounds it, and kept in
 * float32 where transformers upcasts (RMSNorm's normalization, attention
 * scores and softmax, router softmax and top-k). Activations still travel between ops as float32
 * tensors holding values of the low dtype, so observers and Hessians read
 * them in float32, as llm-compressor's hooks upcast their inputs.
 *
 * MatMuls run in the low dtype on CUDA (`native`: inputs cast down, float32
 * accumulation inside the provider's cuBLAS call, the output cast back up);
 * the CPU provider has no bfloat16 MatMul, so there the float32 MatMul's
 * result is rounded instead (`Cast` to the low dtype and back): the same
 * rounding points, the same values up to accumulation order.
 */
import { OnnxType, type GraphBuilder, type OnnxElemType } from '../onnx/graph-builder.js';
import type { Device } from '../runtime.js';
import { narrow } from './narrow.js';

/** What `--precision` asks for. */
export type Precision = 'fp32' | 'bf16';

/** How a low-precision graph computes: its dtype, and whether MatMuls run in it natively (CUDA) or are emulated (CPU). */
export interface LowPrecision {
  readonly dtype: 'bfloat16' | 'float16';
  readonly native: boolean;
  /**
   * Causal attention runs as onnxruntime's fused GroupQueryAttention kernel
   * (flash attention on CUDA) instead of MatMul, Softmax and MatMul with the
   * scores materialised: what torch's sdpa does on a bf16 model. Native
   * (CUDA) only; `QUANTC_FUSED_ATTENTION=0` turns it off.
   */
  readonly fusedAttention?: boolean;
  /**
   * Where attention is fused, plain causal attention (no window, not rotating
   * in the kernel) runs as MultiHeadAttention on the KV heads repeated in
   * place: on the card the same flash kernel and the same bits, without
   * GroupQueryAttention's copy of q, k and v into its cache layout. Native
   * (CUDA) only; `QUANTC_GQA=1` keeps GroupQueryAttention. (The CPU has no
   * float16 MultiHeadAttention: onnxruntime widens around it there.)
   */
  readonly multiHeadAttention?: boolean;
  /**
   * Where attention is fused and nothing observes the post-RoPE keys, the
   * rotary embedding runs inside the attention kernel (its `do_rotary`):
   * each rotated element computed in float32 from the stored q or k and the
   * rounded cos/sin, and rounded once, where transformers rounds the two
   * products and their sum (a difference of at most a bf16 rounding in an
   * element). Native only; off unless `QUANTC_FUSED_ROPE=1`.
   */
  readonly fusedRotary?: boolean;
  /**
   * RMSNorm's normalization as onnxruntime's SimplifiedLayerNormalization
   * kernel on the low tensor (float32 inside, one rounding out, as
   * `hidden * rsqrt(variance + eps)` then `.to(dtype)` gives), followed by
   * the rounded product with the weight as before: one kernel instead of
   * seven over float32 tensors; the variance sums in the kernel's order.
   * Decoder norms only (the hidden state's; a head's or a latent's keeps the
   * ops). Native only; on unless `QUANTC_FUSED_NORMS=0`.
   */
  readonly fusedNorms?: boolean;
  /**
   * Values of the low dtype travel between ops as tensors of that dtype, not
   * as float32 (narrow.ts: the same values, half the bytes); `all` also runs
   * rounded Add/Sub/Mul in the low dtype, `exact` only moves values (the CPU
   * provider has no float16/bfloat16 arithmetic kernels: it would compute in
   * float32 and drop the rounding). Native only; `QUANTC_NARROW=0` turns it off.
   */
  readonly narrow?: 'all' | 'exact';
}

/**
 * The precision a run resolved to: what was asked, what runs, and why they
 * differ (an architecture without low-precision graphs, a float32 checkpoint).
 */
export interface ResolvedPrecision {
  readonly requested: Precision;
  /** `fp32`, or the checkpoint's low dtype. */
  readonly runs: 'fp32' | 'bfloat16' | 'float16';
  /** Set when the graphs compute in the low dtype. */
  readonly low?: LowPrecision;
  /** Why `bf16` was asked for and float32 runs. */
  readonly note?: string;
}

/** model_type values whose layer graphs place the low-precision roundings (the others run float32). */
export const LOW_PRECISION_TYPES: ReadonlySet<string> = new Set([
  'llama',
  'mistral',
  'qwen2',
  'qwen3',
  'qwen3_moe',
  'qwen2_moe',
  'mixtral',
  'olmoe',
  'deepseek_v3',
  'kimi_k2',
  'glm4_moe',
  'glm4_moe_lite',
  'granitemoe',
  'phimoe',
  'qwen3_next',
  'glm_moe_dsa',
  'gpt_oss',
  'llama4_text',
]);

/**
 * The default precision: the checkpoint's dtype on CUDA when it is bf16 or
 * fp16 (as llm-compressor runs the model there), float32 on the CPU, where
 * the rounding is emulated by extra casts and only slows the run down.
 */
export function defaultPrecision(device: Device, dtype: string): Precision {
  return device === 'cuda' && (dtype === 'bfloat16' || dtype === 'float16') ? 'bf16' : 'fp32';
}

/**
 * `apply`'s default precision: the checkpoint's dtype when it is bf16 or
 * fp16, on the CPU too. llm-compressor calibrates a model loaded with
 * `dtype="auto"` in that dtype on any device, and its statistics, scales and
 * GPTQ/AWQ choices follow those roundings: reproducing them is what a
 * calibrated checkpoint is judged by, where `eval` (float32 on the CPU) only
 * measures. The emulated rounding makes the CPU's forward passes several
 * times slower; `--precision fp32` trades the parity back for that speed.
 */
export function defaultApplyPrecision(dtype: string): Precision {
  return dtype === 'bfloat16' || dtype === 'float16' ? 'bf16' : 'fp32';
}

/** What runs for `requested` on a `modelType` checkpoint stored in `dtype` on `device`. */
export function resolvePrecision(requested: Precision, modelType: string, dtype: string, device: Device): ResolvedPrecision {
  if (requested === 'fp32') return { requested, runs: 'fp32' };
  if (dtype !== 'bfloat16' && dtype !== 'float16') return { requested, runs: 'fp32', note: `the checkpoint's dtype is ${dtype}, so transformers computes in float32` };
  if (!LOW_PRECISION_TYPES.has(modelType)) return { requested, runs: 'fp32', note: `${modelType} layers have no ${dtype} graphs yet; they compute in float32` };
  const native = device === 'cuda';
  return {
    requested,
    runs: dtype,
    low: {
      dtype,
      native,
      fusedAttention: native && process.env.QUANTC_FUSED_ATTENTION !== '0',
      multiHeadAttention: native && process.env.QUANTC_GQA !== '1',
      // Opt-in: on the card it left a third of the tiny models' layer outputs identical to transformers' (98–100% without it).
      fusedRotary: native && process.env.QUANTC_FUSED_ROPE === '1',
      // With it 11 of the 17 tiny models give transformers' values on the card bit for bit (precision-parity --refs); 5% faster on the 1B llama.
      fusedNorms: native && process.env.QUANTC_FUSED_NORMS !== '0',
      ...(native && process.env.QUANTC_NARROW !== '0' ? { narrow: 'all' as const } : {}),
    },
  };
}

/** One line for a run summary: `bfloat16 (MatMuls in bfloat16)`, `bfloat16 (bfloat16 rounding emulated in float32 ops)`, `float32`, or `float32 (--precision bf16: why)`. */
export function describePrecision(p: ResolvedPrecision): string {
  if (p.low) return `${p.runs} (${p.low.native ? `MatMuls in ${p.runs}` : `${p.runs} rounding emulated in float32 ops`})`;
  return p.note ? `float32 (--precision ${p.requested}: ${p.note})` : 'float32';
}

const graphs = new WeakMap<GraphBuilder, LowPrecision>();
const fused = new WeakSet<GraphBuilder>();
const fusedRope = new WeakSet<GraphBuilder>();
const multiHead = new WeakSet<GraphBuilder>();

/** Makes graph `g` compute in `low` (nothing for float32), with fused attention (and rotary) where `low` asks for it. */
export function setGraphPrecision(g: GraphBuilder, low: LowPrecision | undefined): void {
  if (low) graphs.set(g, low);
  if (low?.fusedAttention) fused.add(g);
  if (low?.fusedAttention && low.fusedRotary) fusedRope.add(g);
  if (low?.fusedAttention && low.multiHeadAttention) multiHead.add(g);
  if (low?.native && low.narrow) g.rewriteWith((nodes, graph) => narrow(nodes, graph, onnxType(low), low.narrow === 'all'));
}

/** Makes graph `g`'s causal attention one fused kernel whatever its precision (float32 on the CPU, as tests check it). */
export function setFusedAttention(g: GraphBuilder): void {
  fused.add(g);
}

/** Whether graph `g`'s causal attention runs as one fused kernel. */
export function fusedAttention(g: GraphBuilder): boolean {
  return fused.has(g);
}

/** Makes graph `g`'s fused attention rotate its queries and keys itself where it can (float32 on the CPU, as tests check it). */
export function setFusedRotary(g: GraphBuilder): void {
  fused.add(g);
  fusedRope.add(g);
}

/** Whether graph `g`'s fused attention may apply the rotary embedding itself (see {@link LowPrecision.fusedRotary}). */
export function fusedRotary(g: GraphBuilder): boolean {
  return fusedRope.has(g);
}

/** Makes graph `g`'s plain causal attention fused as MultiHeadAttention (float32 on the CPU, as tests check it). */
export function setMultiHeadAttention(g: GraphBuilder): void {
  fused.add(g);
  multiHead.add(g);
}

/** Whether graph `g`'s plain causal attention runs as MultiHeadAttention (see {@link LowPrecision.multiHeadAttention}). */
export function multiHeadAttention(g: GraphBuilder): boolean {
  return multiHead.has(g);
}

const plainFused = new WeakSet<GraphBuilder>();

/**
 * Makes graph `g`'s plain causal attention (no window, q and k rotated
 * already) one fused kernel, MultiHeadAttention, without fusing any other
 * attention: a float32 graph on the CPU, where the fused kernel computes the
 * same attention in float32 without the `[B, H, T, T]` scores passing
 * through memory op by op (masked, scaled, exponentiated), and where
 * windowed or chunked attention stays on the masked ops (padding a chunk
 * for the kernel would cost more than it saves).
 */
export function setPlainFusedAttention(g: GraphBuilder): void {
  plainFused.add(g);
}

/** Whether graph `g` fuses plain causal attention only (see {@link setPlainFusedAttention}). */
export function plainFusedAttention(g: GraphBuilder): boolean {
  return plainFused.has(g);
}

/** The low precision of graph `g`, undefined when it computes in float32. */
export function graphPrecision(g: GraphBuilder): LowPrecision | undefined {
  return graphs.get(g);
}

/** Gives graph `to` the precision of graph `from` (expert-group and MLP-slice graphs of a layer). */
export function inheritPrecision(to: GraphBuilder, from: GraphBuilder): void {
  setGraphPrecision(to, graphs.get(from));
  if (fused.has(from)) fused.add(to);
  if (fusedRope.has(from)) fusedRope.add(to);
  if (multiHead.has(from)) multiHead.add(to);
}

/**
 * Whether graph `g`'s low-precision ops are emulated (the CPU), where they
 * compute as torch's CPU kernels do wherever onnxruntime's differ enough to
 * round to another bf16 value: the attention's exponential as torch's flash
 * kernel takes it (fast-exp.ts), SiLU as `x / (1 + exp(−x))` (onnxruntime's
 * Sigmoid is an approximation: 0.15 % of bf16 SiLU outputs round the other
 * way). On CUDA the graphs use onnxruntime's kernels.
 */
export function torchCpuKernels(g: GraphBuilder): boolean {
  const low = graphs.get(g);
  return low !== undefined && !low.native;
}

/** The ONNX element type of a low dtype. */
export function onnxType(low: LowPrecision): OnnxElemType {
  return low.dtype === 'bfloat16' ? OnnxType.bfloat16 : OnnxType.float16;
}

/** `x` rounded to the graph's low dtype (kept a float32 tensor); `x` itself in a float32 graph. */
export function rounded(g: GraphBuilder, x: string): string {
  const low = graphs.get(g);
  if (!low) return x;
  return g.op('Cast', [g.op('Cast', [x], { to: onnxType(low) })], { to: OnnxType.float });
}

/**
 * `a @ b` as transformers computes it: float32 in a float32 graph; in a
 * low-precision graph both operands are values of the low dtype (`b`, a
 * weight, is rounded to it: it folds into the initializer), the products
 * accumulate in float32 and the result is rounded, natively on CUDA.
 */
export function matmul(g: GraphBuilder, a: string, b: string, weight = false, lowB = false): string {
  const low = graphs.get(g);
  if (!low) return g.op('MatMul', [a, b]);
  if (!low.native) return rounded(g, g.op('MatMul', [a, weight ? rounded(g, b) : b]));
  const down = (x: string): string => g.op('Cast', [x], { to: onnxType(low) });
  // `lowB`: `b` is a tensor of the low dtype already (candidates made once a run), not cast again.
  return g.op('Cast', [g.op('MatMul', [down(a), lowB ? b : down(b)])], { to: OnnxType.float });
}

/**
 * `a @ b` as one part of a MatMul split along its inner dimension: the
 * parts' float32 sums add up before the one rounding (emulated); on CUDA
 * each part comes out of the low-precision MatMul already rounded.
 */
export function partialMatmul(g: GraphBuilder, a: string, b: string): string {
  const low = graphs.get(g);
  return low && !low.native ? g.op('MatMul', [a, rounded(g, b)]) : matmul(g, a, b, true);
}

/**
 * `a @ b + bias` of a Linear with bias: the bias joins the float32
 * accumulator and the sum is rounded once (as addmm does), emulated or,
 * on CUDA, after the low-precision MatMul.
 */
export function matmulBias(g: GraphBuilder, a: string, b: string, bias: string, lowB = false): string {
  const low = graphs.get(g);
  if (!low) return g.op('Add', [g.op('MatMul', [a, b]), bias]);
  if (!low.native) return rounded(g, g.op('Add', [g.op('MatMul', [a, rounded(g, b)]), rounded(g, bias)]));
  return rounded(g, g.op('Add', [matmul(g, a, b, false, lowB), rounded(g, bias)]));
}

/** `op` of inputs as one element-wise op of the low dtype: computed in float32, the result rounded. */
export function lowOp(g: GraphBuilder, opType: string, inputs: readonly string[]): string {
  return rounded(g, g.op(opType, inputs));
}

/** Rounds float32 `x` to bfloat16 (round to nearest even), as a float32 value. */
export function roundBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000) return f32[0]!;
  u32[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
  return f32[0]!;
}

/** Rounds float32 `x` to float16 (round to nearest even), as a float32 value. */
export function roundF16(x: number): number {
  const native = (Math as unknown as { f16round?: (v: number) => number }).f16round;
  return native ? native(x) : roundHalf(x);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Float16 rounding for runtimes without Math.f16round. */
function roundHalf(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  // Spacing of float16 values around `a`: 2^(e-10), subnormals 2^-24.
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const step = 2 ** (e - 10);
  const q = a / step;
  let r = Math.round(q);
  if (q - Math.trunc(q) === 0.5 && r % 2 === 1) r -= 1;
  return Math.sign(x) * r * step;
}

/** The rounding of a low dtype, for values the executor combines outside the graphs. */
export function roundTo(dtype: LowPrecision['dtype']): (x: number) => number {
  return dtype === 'bfloat16' ? roundBf16 : roundF16;
}

/**
 * Whether CUDA float32 MatMuls may round their inputs to TF32 in a run asked
 * for in `requested` (or the default) on a `modelType` checkpoint stored in
 * `dtype`: only when its layers compute in that 16-bit dtype, whose values
 * TF32 holds exactly (a bf16 or fp16 value times another, accumulated in
 * float32, is the float32 product). Float32 graphs keep float32 arithmetic,
 * as the CPU computes it.
 */
export function tf32Allowed(requested: Precision | undefined, device: Device, dtype: string, modelType: string): boolean {
  return device === 'cuda' && resolvePrecision(requested ?? defaultPrecision(device, dtype), modelType, dtype, device).low !== undefined;
}
