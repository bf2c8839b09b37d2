/** `qwen2_moe` → `Qwen2MoeForCausalLM`: q/k/v bias from `qkv_bias`, gated shared expert. */
import { gqaAttention, skeletonClasses } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';
import { qwenMlp } from './qwen-moe.js';

/** Qwen1.5-MoE and Qwen2-57B-A14B. */
export const qwen2Moe: ArchitectureDescriptor = {
  modelType: 'qwen2_moe',
  causalLm: 'Qwen2MoeForCausalLM',
  defaults: {
    vocab_size: 151936, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 24,
    num_attention_heads: 16, hidden_act: 'silu', tie_word_embeddings: false, qkv_bias: true,
    moe_intermediate_size: 1408, shared_expert_intermediate_size: 5632, num_experts: 60, num_experts_per_tok: 4,
    decoder_sparse_step: 1, mlp_only_layers: [],
  },
  build(m) {
    const c = skeletonClasses('Qwen2Moe');
    const bias = m.cfg.bool('qkv_bias', true);
    const attention = gqaAttention(m.cfg, 'Qwen2MoeAttention', bias, false);
    m.causalLm(c, (i, layer) => {
      m.attention(layer, 'self_attn', attention, c.norm);
      qwenMlp(m, layer, i, { prefix: 'Qwen2Moe', blockCls: 'Qwen2MoeSparseMoeBlock', routerFirst: true, shared: true });
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
