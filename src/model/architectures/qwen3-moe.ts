/** `qwen3_moe` → `Qwen3MoeForCausalLM`: per-head q/k norms, experts then router, no shared expert. */
import { gqaAttention, skeletonClasses } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';
import { qwenMlp } from './qwen-moe.js';

/** Qwen3-30B-A3B, Qwen3-235B-A22B and relatives. */
export const qwen3Moe: ArchitectureDescriptor = {
  modelType: 'qwen3_moe',
  causalLm: 'Qwen3MoeForCausalLM',
  defaults: {
    vocab_size: 151936, hidden_size: 2048, intermediate_size: 6144, num_hidden_layers: 24,
    num_attention_heads: 32, num_key_value_heads: 4, hidden_act: 'silu', tie_word_embeddings: false,
    attention_bias: false, moe_intermediate_size: 768, num_experts: 128, num_experts_per_tok: 8,
    decoder_sparse_step: 1, mlp_only_layers: [],
  },
  aliases: { num_experts: 'num_local_experts', num_local_experts: 'num_experts' },
  build(m) {
    const c = skeletonClasses('Qwen3Moe');
    const bias = m.cfg.bool('attention_bias', false);
    const attention = { ...gqaAttention(m.cfg, 'Qwen3MoeAttention', bias), qkNorm: 'head' as const };
    m.causalLm(c, (i, layer) => {
      m.attention(layer, 'self_attn', attention, c.norm);
      qwenMlp(m, layer, i, { prefix: 'Qwen3Moe', blockCls: 'Qwen3MoeSparseMoeBlock', routerFirst: false, shared: false });
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
