/**
 * `phimoe` → `PhimoeForCausalLM`: LayerNorms (with bias) instead of
 * RMSNorms, a router that subclasses `nn.Linear`, optional lm_head bias.
 */
import { DEFAULT_EXPERTS_LAYOUT } from '../moe-facts.js';
import { gqaAttention, skeletonClasses } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';

/** Phi-3.5-MoE. */
export const phimoe: ArchitectureDescriptor = {
  modelType: 'phimoe',
  causalLm: 'PhimoeForCausalLM',
  defaults: {
    vocab_size: 32064, hidden_size: 4096, intermediate_size: 6400, num_hidden_layers: 32,
    num_attention_heads: 32, num_key_value_heads: 8, hidden_act: 'silu', tie_word_embeddings: false,
    attention_bias: false, num_local_experts: 16, num_experts_per_tok: 2, lm_head_bias: false,
  },
  build(m) {
    const c = { ...skeletonClasses('Phimoe'), layerNorm: true };
    const attention = gqaAttention(m.cfg, 'PhimoeAttention', m.cfg.bool('attention_bias', false));
    const e = m.cfg.int('num_local_experts');
    const inter = m.cfg.int('intermediate_size');
    m.causalLm(c, (_, layer) => {
      m.attention(layer, 'self_attn', attention, c.norm);
      m.routedMoe(layer, {
        name: 'mlp',
        blockCls: 'PhimoeSparseMoeBlock',
        routerName: 'router',
        routerCls: 'PhimoeTopKRouter',
        routerLinear: true,
        experts: { cls: 'PhimoeExperts', numExperts: e, intermediate: inter, layout: DEFAULT_EXPERTS_LAYOUT, act: true },
      });
      m.layerNorm(layer, 'input_layernorm', m.hidden);
      m.layerNorm(layer, 'post_attention_layernorm', m.hidden);
    });
  },
};
