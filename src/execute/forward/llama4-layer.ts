/**
 * The Llama 4 text decoder layer as transformers 5.17 computes it:
 * attention with RoPE on interleaved channel pairs (the complex-number
 * form) on RoPE layers, followed by a weightless L2 norm of q and k where
 * `use_qk_norm`; NoPE layers (`no_rope_layers[i] == 0`) skip both and scale
 * the queries by `log1p(floor((pos + 1) / floor_scale)) · attn_scale + 1`
 * when `attn_temperature_tuning`; `chunked_attention` layers see only keys
 * of their own `attention_chunk_size` chunk. The feed-forward block is a
 * dense MLP of `intermediate_size_mlp` off `moe_layers`, else the top-k
 * router whose sigmoid scores scale each expert's *input*, plus the shared
 * expert on the unscaled input. MoE layers return `routed [E]`.
 */
import type { GraphBuilder } from '../onnx/graph-builder.js';
import { UnsupportedModelError, type DecoderConfig } from './decoder-config.js';
import { placedExperts } from './expert-groups.js';
import { decoderLayer, type LayerInputs, type LayerOptions, type LayerProgram } from './llama-layer.js';
import { EXPERT_GROUP_BYTES, flatten, inputMajorStack, joinShared, routedCountOutput, scatterTopK, storedInputMajorExperts, unflatten, type ExpertPlacement, type Routing } from './moe.js';
import { observeExperts, observeInput } from './observe.js';
import { attention, chunkedAttention, linear, rmsNorm, silu, sliceLast, splitHeads } from './ops.js';
import { fusedAttention, lowOp, matmul, rounded } from './precision.js';
import { gatedMlp, denseMlp } from './split-mlp.js';
import { expertCount } from './softmax-moe-layer.js';
import type { WeightReader } from './weights.js';

const MASK_MIN = -3.4028234663852886e38;

/** What differs between Llama 4 layers, from the text config with its class defaults. */
export interface Llama4Layer {
  readonly rope: boolean;
  readonly qkNorm: boolean;
  readonly temperature: { readonly floorScale: number; readonly attnScale: number } | null;
  /** Keys restricted to the query's chunk of this many positions, or null. */
  readonly chunk: number | null;
  readonly moe: boolean;
}

function numberOr(v: unknown, fallback: number): number {
  return typeof v === 'number' ? v : fallback;
}

/** How layer `layer` of a `llama4_text` config runs (`Llama4TextConfig.__post_init__` defaults). */
export function llama4LayerKind(raw: Readonly<Record<string, unknown>>, layer: number): Llama4Layer {
  const n = numberOr(raw.num_hidden_layers, 48);
  const interval = numberOr(raw.no_rope_layer_interval, 4);
  const given = Array.isArray(raw.no_rope_layers) && raw.no_rope_layers.length > 0 ? (raw.no_rope_layers as number[]) : null;
  const rope = given ? given[layer] !== 0 : (layer + 1) % interval !== 0;
  const step = numberOr(raw.interleave_moe_layer_step, 1);
  const moeLayers = Array.isArray(raw.moe_layers) ? (raw.moe_layers as number[]) : Array.from({ length: n }, (_, i) => i).filter((i) => i >= step - 1 && (i - (step - 1)) % step === 0);
  const types = Array.isArray(raw.layer_types) ? (raw.layer_types as string[]) : null;
  const chunked = types ? types[layer] === 'chunked_attention' : rope;
  const chunkSize = raw.attention_chunk_size === undefined ? 8192 : raw.attention_chunk_size;
  if (chunked && typeof chunkSize !== 'number') throw new UnsupportedModelError('config.json: a chunked_attention layer needs "attention_chunk_size"');
  return {
    rope,
    qkNorm: raw.use_qk_norm !== false && rope,
    temperature: raw.attn_temperature_tuning !== false && !rope ? { floorScale: numberOr(raw.floor_scale, 8192), attnScale: numberOr(raw.attn_scale, 0.1) } : null,
    chunk: chunked ? (chunkSize as number) : null,
    moe: moeLayers.includes(layer),
  };
}

/**
 * RoPE on interleaved pairs `(x[2i], x[2i+1])` of `[B, heads, T, D]`, as `apply_rotary_emb` multiplies complex numbers.
 * In the low dtype the product is float32 (`x.float()` times the float32 `freqs_cis`), rounded once by `type_as`.
 */
function interleavedRotary(g: GraphBuilder, x: string, cos: string, sin: string, dim: number): string {
  const half = dim / 2;
  // The tables repeat their first half (rotate_half layout); each pair takes frequency i.
  const c = g.op('Unsqueeze', [sliceLast(g, cos, 0, half), g.i64([-1])]);
  const s = g.op('Unsqueeze', [sliceLast(g, sin, 0, half), g.i64([-1])]);
  const pairs = g.op('Reshape', [x, g.i64([0, 0, 0, half, 2])]);
  const re = sliceLast(g, pairs, 0, 1);
  const im = sliceLast(g, pairs, 1, 2);
  const outRe = g.op('Sub', [g.op('Mul', [re, c]), g.op('Mul', [im, s])]);
  const outIm = g.op('Add', [g.op('Mul', [re, s]), g.op('Mul', [im, c])]);
  return g.op('Reshape', [rounded(g, g.op('Concat', [outRe, outIm], { axis: -1 })), g.i64([0, 0, 0, dim])]);
}

/** Positions `0 … T-1` (int64) of the sequence of `[B, heads, T, D]` states. */
function positions(g: GraphBuilder, states: string): string {
  const seq = g.op('Gather', [g.op('Shape', [states]), g.i64(2)], { axis: 0 });
  return g.op('Range', [g.i64(0), seq, g.i64(1)]);
}

/** Llama 4 attention of layer `p` on normed input `h`; returns the o_proj output. */
async function llama4Attention(g: GraphBuilder, w: WeightReader, cfg: DecoderConfig, kind: Llama4Layer, p: string, h: string, inp: LayerInputs): Promise<string> {
  const a = `${p}.self_attn`;
  const proj = async (name: string, heads: number): Promise<string> => {
    const bias = cfg.attentionBias ? await w.optionalVector(`${a}.${name}.bias`) : undefined;
    return splitHeads(g, linear(g, h, await w.linearWeight(`${a}.${name}`), bias), heads, cfg.headDim);
  };
  observeInput(g, [`${a}.q_proj`, `${a}.k_proj`, `${a}.v_proj`], h);
  let q = await proj('q_proj', cfg.heads);
  let k = await proj('k_proj', cfg.kvHeads);
  const v = await proj('v_proj', cfg.kvHeads);
  if (kind.rope) {
    q = interleavedRotary(g, q, inp.cos, inp.sin, cfg.headDim);
    k = interleavedRotary(g, k, inp.cos, inp.sin, cfg.headDim);
  }
  if (kind.qkNorm) {
    // Llama4TextL2Norm: normalized in float32, rounded once (a unit weight changes nothing).
    const ones = new Float32Array(cfg.headDim).fill(1);
    q = rmsNorm(g, q, ones, cfg.eps);
    k = rmsNorm(g, k, ones, cfg.eps);
  }
  // The chunk size where the fused kernel takes the chunks as sequences of their own (no `[T, T]` mask); else null.
  const fusedChunk = fusedAttention(g) ? kind.chunk : null;
  const pos = kind.temperature || (kind.chunk && fusedChunk === null) ? positions(g, q) : '';
  if (kind.temperature) {
    const t = kind.temperature;
    const steps = g.op('Floor', [g.op('Div', [g.op('Add', [g.op('Cast', [pos], { to: 1 }), g.f32(1)]), g.f32(t.floorScale)])]);
    const scale = g.op('Add', [g.op('Mul', [g.op('Log', [g.op('Add', [steps, g.f32(1)])]), g.f32(t.attnScale)]), g.f32(1)]);
    // The float32 scales promote the product to float32; `.to(query_states.dtype)` rounds it.
    q = lowOp(g, 'Mul', [q, g.op('Reshape', [scale, g.i64([1, 1, -1, 1])])]);
  }
  observeInput(g, [`${a}.key_states`], k);
  observeInput(g, [`${a}.value_states`], v);
  const scale = cfg.headDim ** -0.5;
  let merged: string;
  if (fusedChunk !== null) merged = chunkedAttention(g, q, k, v, cfg.heads, cfg.kvHeads, cfg.headDim, scale, fusedChunk);
  else {
    let mask = inp.mask;
    if (kind.chunk) {
      const chunkOf = g.op('Div', [pos, g.i64(kind.chunk)]);
      const same = g.op('Equal', [g.op('Unsqueeze', [chunkOf, g.i64([1])]), g.op('Unsqueeze', [chunkOf, g.i64([0])])]);
      mask = g.op('Where', [same, inp.mask, g.f32(MASK_MIN)]);
    }
    // torch's sdpa arithmetic in the low dtype; a chunked layer's mask is built here, so only full attention may run fused on the causal mask.
    merged = attention(g, q, k, v, mask, cfg.heads, cfg.kvHeads, cfg.headDim, cfg.headDim, scale, kind.chunk ? undefined : inp.window, { lengths: inp.lengths });
  }
  observeInput(g, [`${a}.o_proj`], merged);
  const oBias = cfg.attentionBias ? await w.optionalVector(`${a}.o_proj.bias`) : undefined;
  return linear(g, merged, await w.linearWeight(`${a}.o_proj`), oBias);
}

/** Experts `[start, start + count)`: gate/up `[E, H, I]`, down `[E, I, H]` (x @ W orientation). */
interface Llama4Experts {
  readonly gate: Float32Array;
  readonly up: Float32Array;
  readonly down: Float32Array;
}

/**
 * Reads experts of `m` (`…feed_forward`): the fused `gate_up_proj [E, H, 2I]`
 * (gate columns first) and `down_proj [E, I, H]`, or per-expert Linears
 * `experts.<e>.{gate,up,down}_proj` as quantized checkpoints store them.
 */
async function readLlama4Experts(w: WeightReader, m: string, start: number, count: number, hidden: number, inter: number): Promise<Llama4Experts> {
  const gate = new Float32Array(count * hidden * inter);
  const up = new Float32Array(count * hidden * inter);
  if (w.has(`${m}.experts.gate_up_proj`)) {
    const fused = await w.slice(`${m}.experts.gate_up_proj`, start, count);
    for (let r = 0; r < count * hidden; r++) {
      gate.set(fused.subarray(r * 2 * inter, r * 2 * inter + inter), r * inter);
      up.set(fused.subarray(r * 2 * inter + inter, (r + 1) * 2 * inter), r * inter);
    }
    return { gate, up, down: await w.slice(`${m}.experts.down_proj`, start, count) };
  }
  const down = new Float32Array(count * inter * hidden);
  const transposeInto = (src: Float32Array, rows: number, cols: number, out: Float32Array, offset: number): void => {
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[offset + c * rows + r] = src[r * cols + c]!;
  };
  for (let e = 0; e < count; e++) {
    const p = `${m}.experts.${start + e}`;
    transposeInto((await w.linear(`${p}.gate_proj`)).data, inter, hidden, gate, e * hidden * inter);
    transposeInto((await w.linear(`${p}.up_proj`)).data, inter, hidden, up, e * hidden * inter);
    transposeInto((await w.linear(`${p}.down_proj`)).data, hidden, inter, down, e * inter * hidden);
  }
  return { gate, up, down };
}

/**
 * Experts `[start, start + count)` of `m` on `x [N, H]`, each on its input
 * scaled by its routing score (`routing.weights`, zero off the top-k), summed
 * into `[N, H]`.
 *
 * Observers see what llm-compressor's linearized experts see. Routed mode:
 * expert e's own scaled input, all N rows (zero where not routed). All-experts
 * mode: every expert runs on the whole scaled input of the block (every
 * expert's slice), which for a top-1 router is the tokens times their score
 * plus rows of zeros.
 *
 * In the low dtype as `Llama4TextExperts` computes: the scaled input, each
 * bmm, the SiLU and the gated product rounded, and the sum over experts
 * (`.sum(dim=0)`: float32, rounded once), to which an unrouted expert's
 * zero input adds zero.
 */
async function llama4ExpertRange(g: GraphBuilder, w: WeightReader, m: string, x: string, routing: Routing, start: number, count: number, hidden: number, inter: number, topK: number, observeAll: boolean): Promise<string> {
  // On the device in bf16 the experts go in as the checkpoint stores them (moe.ts); else float32 stacks made here.
  const { gate: gateW, up: upW, down: downW } = storedInputMajorExperts(g, w, m, count, hidden, inter, start, false) ?? inputMajorStack(g, await readLlama4Experts(w, m, start, count, hidden, inter), count, hidden, inter);
  // [E, N, H]: x scaled by each expert's score.
  const xe = lowOp(g, 'Mul', [g.op('Unsqueeze', [x, g.i64([0])]), g.op('Unsqueeze', [g.op('Transpose', [routing.weights], { perm: [1, 0] }), g.i64([-1])])]);
  const gated = (input: string): string => lowOp(g, 'Mul', [silu(g, matmul(g, input, gateW, true)), matmul(g, input, upW, true)]);
  const act = gated(xe);
  const observedAs = `${m}.experts`;
  const ones = g.op('Add', [g.op('Mul', [routing.mask, g.f32(0)]), g.f32(1)]);
  if (!observeAll) {
    observeExperts(g, observedAs, ['gate_proj', 'up_proj'], xe, true, ones, count, start);
    observeExperts(g, observedAs, ['down_proj'], act, true, ones, count, start);
  } else {
    if (topK !== 1) throw new UnsupportedModelError(`${m}: calibrating every expert of a Llama 4 router with num_experts_per_tok ${topK} is not supported (1 is)`);
    // The block's scaled rows: each token times its one score, and zero rows (the other experts' slices).
    const zeroRow = g.op('Mul', [g.op('Slice', [x, g.i64([0]), g.i64([1]), g.i64([0])]), g.f32(0)]);
    const scaled = g.op('Concat', [lowOp(g, 'Mul', [x, g.op('ReduceSum', [routing.weights, g.i64([-1])], { keepdims: 1 })]), zeroRow], { axis: 0 });
    observeExperts(g, observedAs, ['gate_proj', 'up_proj'], scaled, false, ones, count, start);
    observeExperts(g, observedAs, ['down_proj'], gated(g.op('Unsqueeze', [scaled, g.i64([0])])), true, ones, count, start);
  }
  return rounded(g, g.op('ReduceSum', [matmul(g, act, downW, true), g.i64([0])], { keepdims: 0 }));
}

/** Builds Llama 4 text decoder layer `layer`. */
export async function llama4Layer(w: WeightReader, cfg: DecoderConfig, layer: number, raw: Readonly<Record<string, unknown>>, options: LayerOptions = {}): Promise<LayerProgram> {
  const placement: ExpertPlacement = { groupBytes: options.expertGroupBytes ?? EXPERT_GROUP_BYTES, observe: options.observe };
  const kind = llama4LayerKind(raw, layer);
  const attention = (g: GraphBuilder, p: string, h: string, inp: LayerInputs): Promise<string> => llama4Attention(g, w, cfg, kind, p, h, inp);
  if (!kind.moe) {
    const mlpCfg = { ...cfg, intermediate: numberOr(raw.intermediate_size_mlp, 16384) };
    const graph = await decoderLayer(w, cfg, layer, (g, p, h) => denseMlp(g, w, mlpCfg, `${p}.feed_forward`, h, placement), attention, options);
    return { graph, expertGroups: placement.groups };
  }
  const experts = expertCount(raw);
  const k = numberOr(raw.num_experts_per_tok, 1);
  const observeAll = options.observe !== undefined && (typeof options.observe === 'string' ? options.observe : options.observe.experts) === 'all';
  const graph = await decoderLayer(
    w,
    cfg,
    layer,
    async (g, p, h) => {
      const m = `${p}.feed_forward`;
      const x = flatten(g, h, cfg.hidden);
      observeInput(g, [`${m}.router`], x);
      const logits = linear(g, x, await w.linearWeight(`${m}.router`));
      const [values, indices] = g.opMulti('TopK', [logits, g.i64([k])], 2, { axis: -1, largest: 1, sorted: 1 });
      // The router's sigmoid computes in float32 and is cast back to the logits' dtype.
      const routing = scatterTopK(g, logits, lowOp(g, 'Sigmoid', [values!]), indices!);
      routedCountOutput(g, routing.mask, experts, `routed${options.into?.suffix ?? ''}`);
      const routed = await placedExperts(g, x, routing, experts, cfg.hidden, 3 * cfg.hidden * cfg.intermediate * 4, placement, (gg, xin, r, start, count) =>
        llama4ExpertRange(gg, w, m, xin, r, start, count, cfg.hidden, cfg.intermediate, k, observeAll),
      );
      const shared = await gatedMlp(g, w, `${m}.shared_expert`, x, false);
      return unflatten(g, joinShared(g, placement, routed, shared, ['tokens', cfg.hidden]), h);
    },
    attention,
    options,
  );
  return { graph, expertGroups: placement.groups };
}
