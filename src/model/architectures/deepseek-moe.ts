/**
 * The DeepSeek-style MoE block shared by DeepSeek-V3, GLM-4.5 and the
 * GLM-MoE family: fused routed experts, a `TopkRouter` (not an
 * `nn.Linear`), and one shared-experts MLP of
 * `moe_intermediate_size × n_shared_experts`.
 */
import { DEFAULT_EXPERTS_LAYOUT } from '../moe-facts.js';
import type { MlaOptions, ModelBuilder } from './blocks.js';

/** Adds `mlp` as `<prefix>MoE` (sparse) or `<prefix>MLP` of `intermediate_size` (dense). */
export function deepseekMlp(m: ModelBuilder, layer: number, prefix: string, sparse: boolean): void {
  if (!sparse) {
    m.mlp(layer, 'mlp', m.cfg.int('intermediate_size'), { cls: `${prefix}MLP` });
    return;
  }
  const e = m.cfg.int('n_routed_experts');
  const inter = m.cfg.int('moe_intermediate_size');
  const block = m.module(layer, 'mlp', `${prefix}MoE`);
  const layout = DEFAULT_EXPERTS_LAYOUT;
  const experts = m.experts(block, 'experts', { cls: `${prefix}Experts`, numExperts: e, intermediate: inter, layout, act: true });
  const router = m.router(block, 'gate', `${prefix}TopkRouter`, e);
  const shared = m.mlp(block, 'shared_experts', inter * m.cfg.int('n_shared_experts'), { cls: `${prefix}MLP` });
  m.moeBlock({ block, experts, router, sharedExperts: shared, numExperts: e, intermediate: inter, layout });
}

/** MLA options read from a DeepSeek-style config. */
export function mlaOptions(m: ModelBuilder, prefix: string): MlaOptions {
  const cfg = m.cfg;
  return {
    cls: `${prefix}Attention`,
    normCls: `${prefix}RMSNorm`,
    heads: cfg.int('num_attention_heads'),
    qLoraRank: cfg.optInt('q_lora_rank'),
    kvLoraRank: cfg.int('kv_lora_rank'),
    qkNopeHeadDim: cfg.int('qk_nope_head_dim'),
    qkRopeHeadDim: cfg.int('qk_rope_head_dim'),
    vHeadDim: cfg.int('v_head_dim'),
    bias: cfg.bool('attention_bias', false),
  };
}

/**
 * `mlp_layer_types` when the config has it, else `first_dense` dense
 * layers followed by sparse ones (each config class's own default).
 */
export function mlpLayerTypes(m: ModelBuilder, firstDense: number): string[] {
  const n = m.cfg.int('num_hidden_layers');
  return m.cfg.strList('mlp_layer_types') ?? Array.from({ length: n }, (_, i) => (i < firstDense ? 'dense' : 'sparse'));
}
