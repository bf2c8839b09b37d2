/**
 * The llama decoder layer as one ONNX graph (also mistral, qwen2 with q/k/v
 * biases, qwen3 with per-head q/k norms): pre-norm attention with RoPE and
 * grouped KV heads, then a pre-norm SiLU-gated MLP, each with a residual.
 * Graph inputs: `hidden [B, T, H]`, `cos`/`sin [T, D]`, `mask [T, T]`;
 * output: `out [B, T, H]`.
 */
import { GraphBuilder, OnnxType, type ModelBytes } from '../onnx/graph-builder.js';
import { windowOf, type DecoderConfig } from './decoder-config.js';
import { EXPERT_GROUP_BYTES, type ExpertGroups, type ExpertPlacement } from './moe.js';
import { denseMlp } from './split-mlp.js';
import { enableObservers, observeInput, observesInput, observesNamed, type ObserveOption } from './observe.js';
import { attention, attentionLengths, fusesAttention, layerNorm, linear, partialRotary, perHeadTable, rmsNorm, splitHeads, splitHeadsLast, type AttentionLengths } from './ops.js';
import { fusedRotary, lowOp, setGraphPrecision, setPlainFusedAttention, type LowPrecision } from './precision.js';
import type { WeightReader } from './weights.js';

/** How a layer graph is built: plain, or with input observers (and which tokens experts observe). */
export interface LayerOptions {
  readonly observe?: ObserveOption;
  /** Bound on the expert weights of one graph (bytes, float32); larger MoE blocks run their experts in groups. */
  readonly expertGroupBytes?: number;
  /** Build the layer into a graph shared with other layers instead of a graph of its own. */
  readonly into?: LayerSlot;
  /** Compute in the checkpoint's low dtype (see precision.ts); float32 when unset. */
  readonly precision?: LowPrecision;
  /** In a float32 graph, run plain causal attention as one fused kernel (precision.ts: setPlainFusedAttention). */
  readonly fusePlainAttention?: boolean;
  /**
   * Whether the layer's own graph returns its output (default true). False
   * for a pass that reads only its statistics: the graph then holds only
   * what they depend on (not a dense layer's `down_proj` product or the
   * residual). Not for a layer built {@link into} a shared graph.
   */
  readonly keepOutput?: boolean;
}

/**
 * A place for one layer inside a graph of several consecutive layers: the
 * builder, its inputs (`hidden` being the previous layer's output), and the
 * name of the graph output the layer's result gets.
 */
export interface LayerSlot {
  readonly g: GraphBuilder;
  readonly inputs: LayerInputs;
  readonly output: string;
  /**
   * Whether `output` is a graph output (the default) or only the name the
   * next layer reads: a value nobody fetches is then neither widened to
   * float32 nor kept, and the next layer reads it in the low dtype.
   */
  readonly declare?: boolean;
  /**
   * Appended to the layer's outputs that carry no module name (MoE routing
   * counts) where several layers share the graph, so that each is unique.
   */
  readonly suffix?: string;
}

/**
 * A layer's main graph and, for MoE blocks too large for it, the expert
 * groups that follow it. `graph` is empty when the layer was built into a
 * shared graph ({@link LayerOptions.into}).
 */
export interface LayerProgram {
  readonly graph: ModelBytes;
  readonly expertGroups?: ExpertGroups;
}

/** Names of the standard layer graph inputs, declared on `g`. */
export interface LayerInputs {
  readonly hidden: string;
  readonly cos: string;
  readonly sin: string;
  readonly mask: string;
  /** What `mask` holds, where the layer knows it: the plain causal mask (null) or one with this attention window (see {@link attention}). */
  readonly window?: number | null;
  /**
   * `[chunks]` int64 `0 … ⌈seq/64⌉ − 1`, fed as `delta_chunks`: indexing the
   * gated DeltaNet's chunks with it gives their count a symbolic dimension
   * (gated-delta-net.ts). A loop body has none.
   */
  readonly chunks?: string;
  /**
   * The fused attention's length inputs, made once for all the layers of a
   * graph on first use (see {@link AttentionLengths}); each attention makes
   * its own where unset.
   */
  readonly lengths?: () => AttentionLengths;
}

/** {@link LayerInputs.lengths} of the graph whose layers read `hidden [B, T, H]`. */
export function sharedLengths(g: GraphBuilder, hidden: string): () => AttentionLengths {
  let made: AttentionLengths | undefined;
  return () => (made ??= attentionLengths(g, hidden, 1));
}

/** Declares the inputs every decoder-layer graph takes. */
export function layerInputs(g: GraphBuilder, hidden: number, ropeDim: number): LayerInputs {
  const x = g.input('hidden', OnnxType.float, ['batch', 'seq', hidden]);
  return { hidden: x, ...positionInputs(g, ropeDim), lengths: sharedLengths(g, x) };
}

/** Declares a layer graph's position inputs: the RoPE tables and the additive mask. */
export function positionInputs(g: GraphBuilder, ropeDim: number): Pick<LayerInputs, 'cos' | 'sin' | 'mask' | 'chunks'> {
  return {
    cos: g.input('cos', OnnxType.float, ['seq', ropeDim]),
    sin: g.input('sin', OnnxType.float, ['seq', ropeDim]),
    mask: g.input('mask', OnnxType.float, ['seq', 'seq']),
    // Declared only where read (a gated DeltaNet), as every input of a model's graph.
    chunks: g.input('delta_chunks', OnnxType.int64, ['chunks']),
  };
}

/** The norm `name` (`model.layers.N.input_layernorm`, `model.norm`) on `x`: an RMSNorm, or a LayerNorm with bias where the config says so. */
export async function decoderNorm(g: GraphBuilder, w: WeightReader, cfg: DecoderConfig, name: string, x: string): Promise<string> {
  const weight = await w.normScale(`${name}.weight`, cfg.zeroCentredNorms);
  // A zero-centred norm's `1.0 + weight.float()` multiplies the float32 normalization (Qwen3NextRMSNorm).
  const weightInFloat32 = cfg.normWeightInFloat32 || cfg.zeroCentredNorms;
  return cfg.layerNorm ? layerNorm(g, x, weight, await w.vector(`${name}.bias`), cfg.eps) : rmsNorm(g, x, weight, cfg.eps, true, weightInFloat32);
}

/** `x` clamped to ±`limit` (olmoe's `clip_qkv`), or `x` when there is no limit. */
function clip(g: GraphBuilder, x: string, limit: number | null | undefined): string {
  return limit == null ? x : g.op('Clip', [x, g.f32(-limit), g.f32(limit)]);
}

/** Keys and values as attention reads them back from the kv cache: fake-quantized when simulating a quantized cache. */
export async function cached(g: GraphBuilder, w: WeightReader, attention: string, k: string, v: string): Promise<{ key: string; value: string }> {
  const kq = await w.cacheQuantizer(attention, 'k');
  const vq = await w.cacheQuantizer(attention, 'v');
  return { key: kq ? kq(g, k) : k, value: vq ? vq(g, v) : v };
}

/** Self-attention of layer `p` (`model.layers.N`) on normed input `h`; returns the o_proj output. */
export async function llamaAttention(g: GraphBuilder, w: WeightReader, cfg: DecoderConfig, p: string, h: string, inp: LayerInputs): Promise<string> {
  const a = `${p}.self_attn`;
  const proj = async (name: string): Promise<string> => {
    const bias = cfg.attentionBias ? await w.optionalVector(`${a}.${name}.bias`) : undefined;
    return linear(g, h, await w.linearWeight(`${a}.${name}`), bias);
  };
  observeInput(g, [`${a}.q_proj`, `${a}.k_proj`, `${a}.v_proj`], h);
  let q = await proj('q_proj');
  let k = await proj('k_proj');
  let v = await proj('v_proj');
  const qNorm = await w.optionalVector(`${a}.q_norm.weight`);
  const kNorm = await w.optionalVector(`${a}.k_norm.weight`);
  // q/k norms span one head (qwen3) or, olmoe's, the whole projection (all heads at once).
  const perHead = (n: Float32Array | undefined): boolean => n !== undefined && n.length === cfg.headDim;
  if (qNorm && !perHead(qNorm)) q = rmsNorm(g, q, qNorm, cfg.eps);
  if (kNorm && !perHead(kNorm)) k = rmsNorm(g, k, kNorm, cfg.eps);
  // Heads split in place for the fused kernel, unless a quantized kv cache reads them by head first.
  const headsLast = fusesAttention(g, inp.window, cfg.headDim, cfg.headDim) && !(await w.cacheQuantizer(a, 'k')) && !(await w.cacheQuantizer(a, 'v'));
  const split = headsLast ? splitHeadsLast : splitHeads;
  q = split(g, clip(g, q, cfg.clipQkv), cfg.heads, cfg.headDim);
  k = split(g, clip(g, k, cfg.clipQkv), cfg.kvHeads, cfg.headDim);
  v = split(g, clip(g, v, cfg.clipQkv), cfg.kvHeads, cfg.headDim);
  if (qNorm && perHead(qNorm)) q = rmsNorm(g, q, qNorm, cfg.eps);
  if (kNorm && perHead(kNorm)) k = rmsNorm(g, k, kNorm, cfg.eps);
  // Whole-head RoPE may run inside the fused attention kernel, unless something reads the rotated keys first.
  const kvPerHead = observesNamed(g, `${a}.key_states.h0`);
  const ropeLater = fusedRotary(g) && cfg.rope.dim === cfg.headDim && !observesInput(g, `${a}.key_states`) && !observesInput(g, `${a}.query_states`) && !kvPerHead && !(await w.cacheQuantizer(a, 'k'));
  if (!ropeLater) {
    const table = (t: string): string => (headsLast ? perHeadTable(g, t) : t);
    q = partialRotary(g, q, table(inp.cos), table(inp.sin), cfg.rope.dim, cfg.headDim, headsLast);
    k = partialRotary(g, k, table(inp.cos), table(inp.sin), cfg.rope.dim, cfg.headDim, headsLast);
  }
  // What attention quantization observes of the query: its post-RoPE states, as the attention reads them.
  observeInput(g, [`${a}.query_states`], q);
  // What a KV cache stores: post-RoPE keys and the values, before KV heads are repeated.
  observeInput(g, [`${a}.key_states`], k);
  observeInput(g, [`${a}.value_states`], v);
  // Per-head kv-cache scales (`strategy: attn_head`): each KV head's states on their own.
  if (kvPerHead) {
    const head = (x: string, h: number): string => g.op('Slice', [x, g.i64([h]), g.i64([h + 1]), g.i64([headsLast ? 2 : 1])]);
    for (let h = 0; h < cfg.kvHeads; h++) {
      observeInput(g, [`${a}.key_states.h${h}`], head(k, h));
      observeInput(g, [`${a}.value_states.h${h}`], head(v, h));
    }
  }
  const { key, value } = await cached(g, w, a, k, v);
  const rope = ropeLater ? { cos: inp.cos, sin: inp.sin, dim: cfg.rope.dim } : undefined;
  const out = attention(g, q, key, value, inp.mask, cfg.heads, cfg.kvHeads, cfg.headDim, cfg.headDim, cfg.attentionScale ?? cfg.headDim ** -0.5, inp.window, { rope, lengths: inp.lengths, headsLast });
  observeInput(g, [`${a}.o_proj`], out);
  const oBias = cfg.attentionBias ? await w.optionalVector(`${a}.o_proj.bias`) : undefined;
  return linear(g, out, await w.linearWeight(`${a}.o_proj`), oBias);
}

/**
 * Builds a decoder layer graph (pre-norm attention and MLP, each with a
 * residual) around an MLP builder and an attention builder (llama's by
 * default); `mlp` maps the normed hidden state to the MLP output (dense or
 * MoE) and may declare extra outputs.
 */
export async function decoderLayer(
  w: WeightReader,
  cfg: DecoderConfig,
  layer: number,
  mlp: (g: GraphBuilder, p: string, h: string) => Promise<string>,
  attention: (g: GraphBuilder, p: string, h: string, inp: LayerInputs) => Promise<string> = (g, p, h, inp) => llamaAttention(g, w, cfg, p, h, inp),
  options: LayerOptions = {},
): Promise<ModelBytes> {
  const p = `${w.names.model}.layers.${layer}`;
  const g = options.into?.g ?? new GraphBuilder();
  if (options.observe) enableObservers(g, options.observe);
  setGraphPrecision(g, options.precision);
  if (options.fusePlainAttention && !options.precision) setPlainFusedAttention(g);
  // The mask the executor feeds is the causal mask of this layer's window (executor.ts: windowOf).
  const inp = { ...(options.into?.inputs ?? layerInputs(g, cfg.hidden, cfg.rope.dim)), window: windowOf(cfg, layer) };
  // GraniteMoE scales each branch before its residual add (a python float times a bf16 tensor: rounded).
  const residual = (x: string, branch: string): string => lowOp(g, 'Add', [x, cfg.residualMultiplier === undefined ? branch : lowOp(g, 'Mul', [branch, g.f32(cfg.residualMultiplier)])]);
  const h = await decoderNorm(g, w, cfg, `${p}.input_layernorm`, inp.hidden);
  const x = residual(inp.hidden, await attention(g, p, h, inp));
  const h2 = await decoderNorm(g, w, cfg, `${p}.post_attention_layernorm`, x);
  const out = residual(x, await mlp(g, p, h2));
  if (options.into?.declare === false) g.alias(out, options.into.output);
  else if (options.keepOutput === false && !options.into) g.pruneUnused();
  else g.output(out, options.into?.output ?? 'out', OnnxType.float, ['batch', 'seq', cfg.hidden]);
  return options.into ? new Uint8Array(0) : g.model(`layer_${layer}`);
}

/** The llama decoder layer `layer` (dense SiLU-gated MLP). */
export async function llamaLayer(w: WeightReader, cfg: DecoderConfig, layer: number, options: LayerOptions = {}): Promise<LayerProgram> {
  const placement: ExpertPlacement = { groupBytes: options.expertGroupBytes ?? EXPERT_GROUP_BYTES, observe: options.observe };
  const graph = await decoderLayer(w, cfg, layer, (g, p, h) => denseMlp(g, w, cfg, `${p}.mlp`, h, placement), undefined, options);
  return { graph, expertGroups: placement.groups };
}
