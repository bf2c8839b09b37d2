/**
 * The glm_moe_dsa (GLM-5) decoder layer: MLA attention whose keys are
 * selected per query by the DeepSeek Sparse Attention indexer, as the eager
 * path of transformers 5.17 masks them. The indexer scores every key with
 * its own projections (`wq_b` on the query latent, `wk` → LayerNorm
 * `k_norm`, interleaved RoPE on the first `qk_rope_head_dim` channels):
 * `Σ_h weights_proj(h)_h · n_heads^-½ · relu(q_h·k · head_dim^-½)`, adds
 * the causal mask, keeps the `min(index_topk, T)` best keys of each query,
 * and every other key is masked out of the attention. In the low dtype the
 * projections, `k_norm` and the RoPE are rounded as torch rounds them; the
 * scores and their weighted sum are float32 (the indexer upcasts `q`, `k` and
 * the weights). MoE layers are DeepSeek-V3's (see mla-layer.ts);
 * `mlp_layer_types` / `first_k_dense_replace` pick the dense ones.
 */
import { OnnxType, type GraphBuilder } from '../onnx/graph-builder.js';
import { UnsupportedModelError, type DecoderConfig } from './decoder-config.js';
import type { LayerInputs, LayerOptions, LayerProgram } from './llama-layer.js';
import { mlaAttention, rotaryInterleaved, sigmoidMoeLayer } from './mla-layer.js';
import { observeInput } from './observe.js';
import type { DenseMatrix } from './dequantize.js';
import { linear, linearFloat32, sliceLast, weightConst, type Bf16Matrix } from './ops.js';
import { graphPrecision, rounded } from './precision.js';
import type { WeightReader } from './weights.js';

/** The additive value of a masked key (float32 min, as transformers fills masks). */
const MASK_MIN = -3.4028234663852886e38;

/** Per layer, `full` (its own indexer) or `shared` (the previous full layer's selection), as GlmMoeDsaConfig derives them. */
export function indexerTypes(raw: Readonly<Record<string, unknown>>): string[] {
  const layers = Number(raw.num_hidden_layers);
  if (Array.isArray(raw.indexer_types)) return raw.indexer_types as string[];
  const pattern = raw.index_topk_pattern;
  if (typeof pattern === 'string') return [...pattern].map((c) => (c === 'F' ? 'full' : 'shared'));
  if (Array.isArray(pattern)) return pattern as string[];
  const freq = Math.max(typeof raw.index_topk_freq === 'number' ? raw.index_topk_freq : 1, 1);
  const offset = typeof raw.index_skip_topk_offset === 'number' ? raw.index_skip_topk_offset : 2;
  return Array.from({ length: layers }, (_, i) => (Math.max(i - offset + 1, 0) % freq === 0 ? 'full' : 'shared'));
}

/** Refuses configs with `shared` indexer layers (their key selection comes from another layer). */
export function checkIndexers(raw: Readonly<Record<string, unknown>>): void {
  const shared = indexerTypes(raw).flatMap((t, i) => (t === 'shared' ? [i] : []));
  if (shared.length) {
    throw new UnsupportedModelError(`config.json: layers ${shared.join(', ')} reuse another layer's DSA key selection (indexer type "shared"), which the forward executor does not run`);
  }
}

/** `LayerNorm(x) · weight + bias` over the last axis (in the low dtype computed in float32 and rounded once, as torch's LayerNorm). */
async function layerNorm(g: GraphBuilder, w: WeightReader, name: string, x: string, eps: number): Promise<string> {
  const weight = await w.vector(`${name}.weight`);
  const bias = await w.vector(`${name}.bias`);
  return rounded(g, g.op('LayerNormalization', [x, weightConst(g, weight, [weight.length]), weightConst(g, bias, [bias.length])], { axis: -1, epsilon: { float: eps } }));
}

/**
 * `weights_proj(h)`, the indexer's per-head weights (upcast to float32 after
 * the projection). transformers keeps `indexer.weights_proj` in float32 on a
 * float16 model (`_keep_in_fp32_modules`), not on a bfloat16 one, where the
 * projection is rounded as any Linear.
 */
function headWeights(g: GraphBuilder, h: string, weight: DenseMatrix | Bf16Matrix): string {
  return graphPrecision(g)?.dtype === 'float16' ? linearFloat32(g, h, weight) : linear(g, h, weight);
}

/**
 * The DSA indexer of attention module `a` on normed input `h [B, T, H]` and
 * query latent `qLatent [B, T, q_lora_rank]`: the additive mask `[B, 1, T, T]`
 * with the causal mask kept on each query's top-k keys and the float32 minimum
 * elsewhere.
 */
async function dsaMask(g: GraphBuilder, w: WeightReader, raw: Readonly<Record<string, unknown>>, a: string, h: string, qLatent: string, inp: LayerInputs): Promise<string> {
  const ix = `${a}.indexer`;
  const heads = Number(raw.index_n_heads ?? 32);
  const dim = Number(raw.index_head_dim ?? 128);
  const rope = Number(raw.qk_rope_head_dim);
  const topk = Number(raw.index_topk ?? 2048);
  observeInput(g, [`${ix}.wq_b`], qLatent);
  observeInput(g, [`${ix}.wk`, `${ix}.weights_proj`], h);
  const ropeFirst = (x: string): string => g.op('Concat', [rotaryInterleaved(g, sliceLast(g, x, 0, rope), inp.cos, inp.sin, rope), sliceLast(g, x, rope, dim)], { axis: -1 });
  // Queries [B, T, heads, dim], rotated with positions on the second-to-last axis.
  const q = g.op('Reshape', [linear(g, qLatent, await w.linearWeight(`${ix}.wq_b`)), g.i64([0, 0, heads, dim])]);
  const qRot = g.op('Transpose', [ropeFirst(g.op('Transpose', [q], { perm: [0, 2, 1, 3] }))], { perm: [0, 2, 1, 3] });
  const k = ropeFirst(await layerNorm(g, w, `${ix}.k_norm`, linear(g, h, await w.linearWeight(`${ix}.wk`)), 1e-6));
  // [B, T, heads, dim] @ [B, 1, dim, T] → [B, T, heads, T], in float32 whatever the graph's precision (`q.float() @ k.float()`).
  const kT = g.op('Unsqueeze', [g.op('Transpose', [k], { perm: [0, 2, 1] }), g.i64([1])]);
  const scores = g.op('Relu', [g.op('Mul', [g.op('MatMul', [qRot, kT]), g.f32(dim ** -0.5)])]);
  const weights = g.op('Mul', [headWeights(g, h, await w.linearWeight(`${ix}.weights_proj`)), g.f32(heads ** -0.5)]);
  const index = g.op('Squeeze', [g.op('MatMul', [g.op('Unsqueeze', [weights, g.i64([-2])]), scores]), g.i64([-2])]);
  const masked = g.op('Add', [index, inp.mask]);
  const seq = g.op('Shape', [h], { start: 1, end: 2 });
  const k1 = g.op('Min', [seq, g.i64([topk])]);
  const [, indices] = g.opMulti('TopK', [masked, k1], 2, { axis: -1, largest: 1, sorted: 1 });
  const zeros = g.op('Mul', [masked, g.f32(0)]);
  const ones = g.op('Add', [g.op('Mul', [g.op('Cast', [indices!], { to: OnnxType.float }), g.f32(0)]), g.f32(1)]);
  const selected = g.op('Greater', [g.op('ScatterElements', [zeros, indices!, ones], { axis: -1 }), g.f32(0)]);
  return g.op('Unsqueeze', [g.op('Where', [selected, inp.mask, g.f32(MASK_MIN)]), g.i64([1])]);
}

/** Builds layer `layer` of a glm_moe_dsa model. */
export async function glmMoeDsaLayer(w: WeightReader, cfg: DecoderConfig, layer: number, raw: Readonly<Record<string, unknown>>, options: LayerOptions = {}): Promise<LayerProgram> {
  checkIndexers(raw);
  const attention = (g: GraphBuilder, p: string, h: string, inp: LayerInputs): Promise<string> =>
    mlaAttention(g, w, cfg, raw, p, h, inp, (qLatent) => dsaMask(g, w, raw, `${p}.self_attn`, h, qLatent, inp));
  return sigmoidMoeLayer(w, cfg, layer, raw, options, attention);
}
