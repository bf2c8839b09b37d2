/**
 * Multi-head latent attention (MLA, DeepSeek-V2 style, as glm4_moe_lite and
 * deepseek_v3 use it) and the glm4_moe_lite decoder layer: queries through
 * an optional low-rank `q_a_proj → q_a_layernorm → q_b_proj`, keys and values
 * expanded from a compressed latent (`kv_a_proj_with_mqa → kv_a_layernorm →
 * kv_b_proj`) plus one shared rotary key, RoPE on the `qk_rope_head_dim`
 * slice (interleaved pairs when `rope_interleave`). Sparse layers use the
 * sigmoid group-limited top-k router with `e_score_correction_bias`,
 * `routed_scaling_factor` and shared experts.
 */
import type { GraphBuilder } from '../onnx/graph-builder.js';
import type { DecoderConfig } from './decoder-config.js';
import { cached, decoderLayer, llamaAttention, type LayerInputs, type LayerOptions, type LayerProgram } from './llama-layer.js';
import { gatedMlp } from './split-mlp.js';
import { EXPERT_GROUP_BYTES, flatten, joinShared, routedCountOutput, routedExperts, scatterTopK, unflatten, type ExpertPlacement, type Routing } from './moe.js';
import { observeInput } from './observe.js';
import { denseMlp } from './split-mlp.js';
import { attention, linear, linearFloat32, rmsNorm, rotary, splitHeads, weightConst } from './ops.js';
import { lowOp, rounded } from './precision.js';
import { expertCount } from './softmax-moe-layer.js';
import type { WeightReader } from './weights.js';

/** transformers' RMSNorm default eps, used by the MLA latent norms (built without the config's eps). */
const LATENT_NORM_EPS = 1e-6;

/** Slices `[start, end)` with `step` on the last axis. */
function strided(g: GraphBuilder, x: string, start: number, end: number, step: number): string {
  return g.op('Slice', [x, g.i64([start]), g.i64([end]), g.i64([-1]), g.i64([step])]);
}

/**
 * Interleaved RoPE: pairs `(x0, x1), (x2, x3)…` rotated by one frequency; output laid out as `[evens', odds']`
 * (in the low dtype cos/sin cast down and each op rounded, as `apply_rotary_pos_emb_interleave`).
 */
export function rotaryInterleaved(g: GraphBuilder, x: string, cos: string, sin: string, dim: number): string {
  const c = rounded(g, strided(g, cos, 0, dim / 2, 1));
  const s = rounded(g, strided(g, sin, 0, dim / 2, 1));
  const even = strided(g, x, 0, dim, 2);
  const odd = strided(g, x, 1, dim, 2);
  const a = lowOp(g, 'Sub', [lowOp(g, 'Mul', [even, c]), lowOp(g, 'Mul', [odd, s])]);
  const b = lowOp(g, 'Add', [lowOp(g, 'Mul', [odd, c]), lowOp(g, 'Mul', [even, s])]);
  return g.op('Concat', [a, b], { axis: -1 });
}

/** `qk_head_dim ** -0.5`, times yarn's mscale² when the rope config asks for it. */
function mlaScaling(cfg: DecoderConfig, qkDim: number): number {
  const base = qkDim ** -0.5;
  if (cfg.rope.type === 'default' || !cfg.rope.mscaleAllDim || cfg.rope.factor <= 1) return base;
  const m = 0.1 * cfg.rope.mscaleAllDim * Math.log(cfg.rope.factor) + 1;
  return base * m * m;
}

/**
 * Builds the attention mask of a layer whose keys are selected per query
 * (the DSA indexer) from the query latent `q_a_layernorm(q_a_proj(h))`.
 */
export type KeySelection = (qLatent: string) => Promise<string>;

/**
 * MLA self-attention of layer `p` on normed input `h`; returns the o_proj
 * output. With `select`, the causal mask is the one it builds.
 */
export async function mlaAttention(
  g: GraphBuilder,
  w: WeightReader,
  cfg: DecoderConfig,
  raw: Readonly<Record<string, unknown>>,
  p: string,
  h: string,
  inp: LayerInputs,
  select?: KeySelection,
): Promise<string> {
  const a = `${p}.self_attn`;
  const direct = w.hasLinear(`${a}.q_proj`);
  observeInput(g, [direct ? `${a}.q_proj` : `${a}.q_a_proj`, `${a}.kv_a_proj_with_mqa`], h);
  const q = direct ? linear(g, h, await w.linearWeight(`${a}.q_proj`)) : linear(g, h, await w.linearWeight(`${a}.q_a_proj`), await w.optionalVector(`${a}.q_a_proj.bias`));
  const compressed = linear(g, h, await w.linearWeight(`${a}.kv_a_proj_with_mqa`), await w.optionalVector(`${a}.kv_a_proj_with_mqa.bias`));
  return mlaFromProjections(g, w, cfg, raw, a, { q, direct, compressed }, inp, select);
}

/** The projections of MLA's input: `q_proj`'s output (`direct`) or `q_a_proj`'s, and `kv_a_proj_with_mqa`'s (`[latent | shared rotary key]`). */
export interface MlaProjections {
  readonly q: string;
  readonly direct: boolean;
  readonly compressed: string;
}

/**
 * MLA self-attention of attention module `a` from its input projections
 * (see {@link MlaProjections}); the rest of its weights read from `w`. Any
 * leading dimensions of the projections stay (AWQ's search folds its grid
 * points into the batch).
 */
export async function mlaFromProjections(
  g: GraphBuilder,
  w: WeightReader,
  cfg: DecoderConfig,
  raw: Readonly<Record<string, unknown>>,
  a: string,
  proj: MlaProjections,
  inp: LayerInputs,
  select?: KeySelection,
): Promise<string> {
  const heads = cfg.heads;
  const nope = Number(raw.qk_nope_head_dim);
  const rope = Number(raw.qk_rope_head_dim);
  const vDim = Number(raw.v_head_dim);
  const kvRank = Number(raw.kv_lora_rank);
  const qk = nope + rope;
  const rotate = (x: string): string => (raw.rope_interleave === false ? rotary(g, x, inp.cos, inp.sin, rope) : rotaryInterleaved(g, x, inp.cos, inp.sin, rope));

  let qFlat: string;
  let mask = inp.mask;
  if (proj.direct) qFlat = proj.q;
  else {
    const qLatent = rmsNorm(g, proj.q, await w.vector(`${a}.q_a_layernorm.weight`), LATENT_NORM_EPS);
    observeInput(g, [`${a}.q_b_proj`], qLatent);
    qFlat = linear(g, qLatent, await w.linearWeight(`${a}.q_b_proj`));
    if (select) mask = await select(qLatent);
  }
  const q = splitHeads(g, qFlat, heads, qk);
  const query = g.op('Concat', [strided(g, q, 0, nope, 1), rotate(strided(g, q, nope, qk, 1))], { axis: -1 });

  const compressed = proj.compressed;
  const latentIn = rmsNorm(g, strided(g, compressed, 0, kvRank, 1), await w.vector(`${a}.kv_a_layernorm.weight`), LATENT_NORM_EPS);
  const kRotIn = rotate(g.op('Unsqueeze', [strided(g, compressed, kvRank, kvRank + rope, 1), g.i64([1])]));
  // What an MLA KV cache stores: the normed latent as keys and the rotated shared key as values
  // (fake-quantized there when simulating a quantized cache; both are expanded after the cache).
  observeInput(g, [`${a}.key_states`], latentIn);
  observeInput(g, [`${a}.value_states`], kRotIn);
  const { key: latent, value: kRot } = await cached(g, w, a, latentIn, kRotIn);
  observeInput(g, [`${a}.kv_b_proj`], latent);
  const kv = splitHeads(g, linear(g, latent, await w.linearWeight(`${a}.kv_b_proj`)), heads, nope + vDim);
  const key = g.op('Concat', [strided(g, kv, 0, nope, 1), g.op('Expand', [kRot, g.i64([1, heads, 1, 1])])], { axis: -1 });
  const value = strided(g, kv, nope, nope + vDim, 1);
  const out = attention(g, query, key, value, mask, heads, heads, qk, vDim, mlaScaling(cfg, qk));
  observeInput(g, [`${a}.o_proj`], out);
  return linear(g, out, await w.linearWeight(`${a}.o_proj`), await w.optionalVector(`${a}.o_proj.bias`));
}

/**
 * DeepSeek-V3 style router: `sigmoid(logits)`; experts chosen by score +
 * `e_score_correction_bias` within the `topk_group` best of `n_group` groups
 * (a group scores the sum of its two best); weights are the plain sigmoid
 * scores of the chosen experts, optionally renormalized, times
 * `routed_scaling_factor`.
 */
export function sigmoidGroupTopK(g: GraphBuilder, logits: string, bias: Float32Array | undefined, raw: Readonly<Record<string, unknown>>, experts: number): Routing {
  const k = Number(raw.num_experts_per_tok);
  const groups = typeof raw.n_group === 'number' ? raw.n_group : 1;
  const topkGroup = typeof raw.topk_group === 'number' ? raw.topk_group : 1;
  const scaling = typeof raw.routed_scaling_factor === 'number' ? raw.routed_scaling_factor : 1;
  const scores = g.op('Sigmoid', [logits]);
  let choice = bias ? g.op('Add', [scores, weightConst(g, bias, [experts])]) : scores;
  if (groups > 1) {
    const perGroup = experts / groups;
    const grouped = g.op('Reshape', [choice, g.i64([-1, groups, perGroup])]);
    const [best2] = g.opMulti('TopK', [grouped, g.i64([2])], 2, { axis: -1 });
    const groupScores = g.op('ReduceSum', [best2!, g.i64([-1])], { keepdims: 0 });
    const [, groupIdx] = g.opMulti('TopK', [groupScores, g.i64([topkGroup])], 2, { axis: -1 });
    const groupMask = scatterTopK(g, groupScores, g.op('Add', [g.op('Mul', [g.op('Cast', [groupIdx!], { to: 1 }), g.f32(0)]), g.f32(1)]), groupIdx!).weights;
    const expertMask = g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [groupMask, g.i64([-1])]), g.i64([1, 1, perGroup])]), g.i64([-1, experts])]);
    choice = g.op('Where', [g.op('Greater', [expertMask, g.f32(0)]), choice, g.f32(-Infinity)]);
  }
  const [, indices] = g.opMulti('TopK', [choice, g.i64([k])], 2, { axis: -1 });
  let weights = g.op('GatherElements', [scores, indices!], { axis: 1 });
  if (raw.norm_topk_prob === true) weights = g.op('Div', [weights, g.op('Add', [g.op('ReduceSum', [weights, g.i64([-1])], { keepdims: 1 }), g.f32(1e-20)])]);
  weights = g.op('Mul', [weights, g.f32(scaling)]);
  return scatterTopK(g, scores, weights, indices!, k);
}

/** Whether layer `layer` of a glm4_moe_lite / deepseek_v3 config is sparse. */
export function mlaSparseLayer(raw: Readonly<Record<string, unknown>>, layer: number): boolean {
  if (Array.isArray(raw.mlp_layer_types)) return raw.mlp_layer_types[layer] === 'sparse';
  const firstDense = typeof raw.first_k_dense_replace === 'number' ? raw.first_k_dense_replace : 1;
  return layer >= firstDense;
}

/**
 * Builds layer `layer` of a glm4_moe_lite, deepseek_v3 or kimi_k2 model (MLA
 * attention), or of a glm4_moe model (llama-style attention with partial
 * rotary, q/k/v biases, optional q/k norms); the MoE blocks are the same.
 * `attention` replaces the layer's attention (glm_moe_dsa's indexed MLA).
 */
export async function sigmoidMoeLayer(
  w: WeightReader,
  cfg: DecoderConfig,
  layer: number,
  raw: Readonly<Record<string, unknown>>,
  options: LayerOptions = {},
  attention?: (g: GraphBuilder, p: string, h: string, inp: LayerInputs) => Promise<string>,
): Promise<LayerProgram> {
  const attn =
    attention ??
    ((g: GraphBuilder, p: string, h: string, inp: LayerInputs): Promise<string> =>
      cfg.modelType === 'glm4_moe' ? llamaAttention(g, w, cfg, p, h, inp) : mlaAttention(g, w, cfg, raw, p, h, inp));
  const placement: ExpertPlacement = { groupBytes: options.expertGroupBytes ?? EXPERT_GROUP_BYTES, observe: options.observe };
  if (!mlaSparseLayer(raw, layer)) {
    const graph = await decoderLayer(w, cfg, layer, (g, p, h) => denseMlp(g, w, cfg, `${p}.mlp`, h, placement), attn, options);
    return { graph, expertGroups: placement.groups };
  }
  const experts = expertCount(raw);
  const inter = Number(raw.moe_intermediate_size);
  const graph = await decoderLayer(
    w,
    cfg,
    layer,
    async (g, p, h) => {
      const m = `${p}.mlp`;
      const x = flatten(g, h, cfg.hidden);
      // The router upcasts its input and weight: its logits, scores and weights stay float32 (the experts' products are cast down).
      const routing = sigmoidGroupTopK(g, linearFloat32(g, x, await w.linearWeight(`${m}.gate`)), await w.optionalVector(`${m}.gate.e_score_correction_bias`), raw, experts);
      const routed = await routedExperts(g, w, m, x, routing, experts, cfg.hidden, inter, placement);
      routedCountOutput(g, routing.mask, experts, `routed${options.into?.suffix ?? ''}`);
      const shared = await gatedMlp(g, w, `${m}.shared_experts`, h, false);
      return joinShared(g, placement, unflatten(g, routed, h), shared, ['batch', 'seq', cfg.hidden]);
    },
    attn,
    options,
  );
  return { graph, expertGroups: placement.groups };
}
