/**
 * The qwen3_next decoder layer: `layer_types` picks the token mixer, a gated
 * DeltaNet (`linear_attn`, see gated-delta-net.ts) or gated full attention
 * (`self_attn`: q_proj yields the query and a per-channel output gate,
 * zero-centred q/k norms, partial RoPE); the MLP is dense on
 * `mlp_only_layers` and otherwise a softmax top-k MoE plus a shared expert
 * scaled by `sigmoid(shared_expert_gate)`. Every RMSNorm but the DeltaNet's
 * gated one scales by `1 + weight`.
 */
import type { GraphBuilder } from '../onnx/graph-builder.js';
import { UnsupportedModelError, type DecoderConfig } from './decoder-config.js';
import { gatedDeltaNet } from './gated-delta-net.js';
import { cached, decoderLayer, type LayerInputs, type LayerOptions, type LayerProgram } from './llama-layer.js';
import { EXPERT_GROUP_BYTES, flatten, joinShared, routedCountOutput, routedExperts, softmaxTopK, unflatten, type ExpertPlacement } from './moe.js';
import { observeInput } from './observe.js';
import { attention, linear, partialRotary, rmsNorm, sliceLast, splitHeads } from './ops.js';
import { lowOp } from './precision.js';
import { expertCount, qwenSparseLayer } from './softmax-moe-layer.js';
import { denseMlp, gatedMlp } from './split-mlp.js';
import type { WeightReader } from './weights.js';

/** Gated full attention of layer `p` on normed input `h`; returns the o_proj output. */
async function gatedAttention(g: GraphBuilder, w: WeightReader, cfg: DecoderConfig, p: string, h: string, inp: LayerInputs): Promise<string> {
  const a = `${p}.self_attn`;
  const d = cfg.headDim;
  observeInput(g, [`${a}.q_proj`, `${a}.k_proj`, `${a}.v_proj`], h);
  // q_proj rows are per head [query (d), gate (d)].
  const qg = g.op('Reshape', [linear(g, h, await w.linearWeight(`${a}.q_proj`)), g.i64([0, 0, cfg.heads, 2 * d])]);
  const gate = g.op('Reshape', [sliceLast(g, qg, d, 2 * d), g.i64([0, 0, cfg.heads * d])]);
  const headsFirst = (x: string): string => g.op('Transpose', [x], { perm: [0, 2, 1, 3] });
  // Zero-centred q/k norms: `1 + weight` multiplies the float32 normalization, cast down once.
  let q = headsFirst(rmsNorm(g, sliceLast(g, qg, 0, d), await w.normScale(`${a}.q_norm.weight`, true), cfg.eps, false, true));
  let k = splitHeads(g, linear(g, h, await w.linearWeight(`${a}.k_proj`)), cfg.kvHeads, d);
  k = rmsNorm(g, k, await w.normScale(`${a}.k_norm.weight`, true), cfg.eps, false, true);
  const v = splitHeads(g, linear(g, h, await w.linearWeight(`${a}.v_proj`)), cfg.kvHeads, d);
  const rope = (x: string): string => partialRotary(g, x, inp.cos, inp.sin, cfg.rope.dim, d);
  q = rope(q);
  k = rope(k);
  observeInput(g, [`${a}.key_states`], k);
  observeInput(g, [`${a}.value_states`], v);
  const kv = await cached(g, w, a, k, v);
  // The output gate: `sigmoid` of the bf16 gate and the product, each rounded in the low dtype.
  // The plain causal mask (inp.window): on CUDA the fused attention kernel.
  const out = lowOp(g, 'Mul', [attention(g, q, kv.key, kv.value, inp.mask, cfg.heads, cfg.kvHeads, d, d, d ** -0.5, inp.window, { lengths: inp.lengths }), lowOp(g, 'Sigmoid', [gate])]);
  observeInput(g, [`${a}.o_proj`], out);
  return linear(g, out, await w.linearWeight(`${a}.o_proj`));
}

/** transformers' names for the legacy layer types it remaps. */
const LEGACY_LAYER_TYPES: Readonly<Record<string, string>> = { conv: 'linear_attention', mamba: 'linear_attention', attention: 'full_attention' };

/** The token mixer of layer `layer`: `layer_types` (legacy names remapped), else full attention every `full_attention_interval` layers. */
export function qwen3NextLayerType(raw: Readonly<Record<string, unknown>>, layer: number): 'linear_attention' | 'full_attention' {
  let kind: string;
  if (Array.isArray(raw.layer_types)) {
    const t = String(raw.layer_types[layer]);
    kind = LEGACY_LAYER_TYPES[t] ?? t;
  } else {
    const interval = typeof raw.full_attention_interval === 'number' ? raw.full_attention_interval : 4;
    kind = (layer + 1) % interval ? 'linear_attention' : 'full_attention';
  }
  if (kind !== 'linear_attention' && kind !== 'full_attention') throw new UnsupportedModelError(`config.json: layer_types[${layer}] "${kind}" is not a qwen3_next layer type (linear_attention, full_attention)`);
  return kind;
}

/** Builds layer `layer` of a qwen3_next model. */
export async function qwen3NextLayer(w: WeightReader, cfg: DecoderConfig, layer: number, raw: Readonly<Record<string, unknown>>, options: LayerOptions = {}): Promise<LayerProgram> {
  const placement: ExpertPlacement = { groupBytes: options.expertGroupBytes ?? EXPERT_GROUP_BYTES, observe: options.observe };
  const kind = qwen3NextLayerType(raw, layer);
  const mixer = (g: GraphBuilder, p: string, h: string, inp: LayerInputs): Promise<string> =>
    kind === 'linear_attention' ? gatedDeltaNet(g, w, cfg, raw, `${p}.linear_attn`, h, inp.chunks) : gatedAttention(g, w, cfg, p, h, inp);
  const experts = expertCount(raw);
  const k = Number(raw.num_experts_per_tok ?? 10);
  const inter = Number(raw.moe_intermediate_size ?? 512);
  const mlp = async (g: GraphBuilder, p: string, h: string): Promise<string> => {
    if (!qwenSparseLayer(raw, layer)) return denseMlp(g, w, cfg, `${p}.mlp`, h, placement);
    const m = `${p}.mlp`;
    const x = flatten(g, h, cfg.hidden);
    const routing = softmaxTopK(g, linear(g, x, await w.linearWeight(`${m}.gate`)), k, raw.norm_topk_prob !== false);
    const routed = await routedExperts(g, w, m, x, routing, experts, cfg.hidden, inter, placement);
    routedCountOutput(g, routing.mask, experts, `routed${options.into?.suffix ?? ''}`);
    const shared = await gatedMlp(g, w, `${m}.shared_expert`, x, false);
    observeInput(g, [`${m}.shared_expert_gate`], x);
    // In the low dtype the sigmoid and the gated shared output are each rounded.
    const gate = lowOp(g, 'Sigmoid', [linear(g, x, await w.linearWeight(`${m}.shared_expert_gate`))]);
    return unflatten(g, joinShared(g, placement, routed, lowOp(g, 'Mul', [gate, shared]), ['tokens', cfg.hidden]), h);
  };
  const graph = await decoderLayer(w, cfg, layer, mlp, mixer, options);
  return { graph, expertGroups: placement.groups };
}
