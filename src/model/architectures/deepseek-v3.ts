/**
 * `deepseek_v3` → `DeepseekV3ForCausalLM`: MLA attention; layers from
 * `first_k_dense_replace` on are MoE (transformers 5 ignores
 * `moe_layer_freq`). Kimi-K2's `kimi_k2` config builds this same model.
 */
import { skeletonClasses } from './blocks.js';
import { deepseekMlp, mlaOptions } from './deepseek-moe.js';
import type { ArchitectureDescriptor } from './descriptor.js';

/** DeepSeek-V3 / R1 and Kimi-K2. */
export const deepseekV3: ArchitectureDescriptor = {
  modelType: 'deepseek_v3',
  causalLm: 'DeepseekV3ForCausalLM',
  defaults: {
    vocab_size: 129280, hidden_size: 7168, intermediate_size: 18432, num_hidden_layers: 61,
    num_attention_heads: 128, hidden_act: 'silu', tie_word_embeddings: false, attention_bias: false,
    moe_intermediate_size: 2048, n_routed_experts: 256, n_shared_experts: 1, num_experts_per_tok: 8,
    first_k_dense_replace: 3, q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64,
    v_head_dim: 128,
  },
  aliases: { n_routed_experts: 'num_local_experts', num_local_experts: 'n_routed_experts' },
  build(m) {
    const c = skeletonClasses('DeepseekV3');
    const mla = mlaOptions(m, 'DeepseekV3');
    const firstDense = m.cfg.int('first_k_dense_replace');
    m.causalLm(c, (i, layer) => {
      m.mla(layer, 'self_attn', mla);
      deepseekMlp(m, layer, 'DeepseekV3', i >= firstDense);
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
