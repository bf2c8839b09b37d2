/**
 * `glm4_moe` → `Glm4MoeForCausalLM`: q/k/v attention (bias from
 * `attention_bias`, optional per-head q/k norms from `use_qk_norm`) and a
 * DeepSeek-style MoE from `first_k_dense_replace` on.
 */
import { gqaAttention, skeletonClasses } from './blocks.js';
import { deepseekMlp } from './deepseek-moe.js';
import type { ArchitectureDescriptor } from './descriptor.js';

/** GLM-4.5 / 4.6 / 4.7 and GLM-4.5-Air. */
export const glm4Moe: ArchitectureDescriptor = {
  modelType: 'glm4_moe',
  causalLm: 'Glm4MoeForCausalLM',
  defaults: {
    vocab_size: 151552, hidden_size: 4096, intermediate_size: 10944, num_hidden_layers: 46,
    num_attention_heads: 96, num_key_value_heads: 8, hidden_act: 'silu', tie_word_embeddings: false,
    attention_bias: false, use_qk_norm: false, moe_intermediate_size: 1408, n_routed_experts: 128,
    n_shared_experts: 1, num_experts_per_tok: 8, first_k_dense_replace: 1,
  },
  aliases: { n_routed_experts: 'num_local_experts', num_local_experts: 'n_routed_experts' },
  build(m) {
    const c = skeletonClasses('Glm4Moe');
    const attention = {
      ...gqaAttention(m.cfg, 'Glm4MoeAttention', m.cfg.bool('attention_bias', false), false),
      ...(m.cfg.bool('use_qk_norm', false) ? { qkNorm: 'head' as const } : {}),
    };
    const firstDense = m.cfg.int('first_k_dense_replace');
    m.causalLm(c, (i, layer) => {
      m.attention(layer, 'self_attn', attention, c.norm);
      deepseekMlp(m, layer, 'Glm4Moe', i >= firstDense);
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
