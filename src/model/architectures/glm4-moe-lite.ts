/**
 * `glm4_moe_lite` → `Glm4MoeLiteForCausalLM`: MLA attention and
 * `mlp_layer_types` (default: layer 0 dense, the rest sparse;
 * `first_k_dense_replace` is not consulted).
 */
import { skeletonClasses } from './blocks.js';
import { deepseekMlp, mlaOptions, mlpLayerTypes } from './deepseek-moe.js';
import type { ArchitectureDescriptor } from './descriptor.js';

/** GLM-4.7-Flash. */
export const glm4MoeLite: ArchitectureDescriptor = {
  modelType: 'glm4_moe_lite',
  causalLm: 'Glm4MoeLiteForCausalLM',
  defaults: {
    vocab_size: 154880, hidden_size: 2048, intermediate_size: 10240, num_hidden_layers: 47,
    num_attention_heads: 20, hidden_act: 'silu', tie_word_embeddings: false, attention_bias: false,
    moe_intermediate_size: 1536, n_routed_experts: 64, n_shared_experts: 1, num_experts_per_tok: 4,
    q_lora_rank: 768, kv_lora_rank: 512, qk_nope_head_dim: 192, qk_rope_head_dim: 64, v_head_dim: 256,
  },
  aliases: { n_routed_experts: 'num_local_experts', num_local_experts: 'n_routed_experts' },
  build(m) {
    const c = skeletonClasses('Glm4MoeLite');
    const mla = mlaOptions(m, 'Glm4MoeLite');
    const types = mlpLayerTypes(m, 1);
    m.causalLm(c, (i, layer) => {
      m.mla(layer, 'self_attn', mla);
      deepseekMlp(m, layer, 'Glm4MoeLite', types[i] === 'sparse');
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
