/** `olmoe` → `OlmoeForCausalLM`: q/k RMSNorms over all heads, router then fused experts. */
import { DEFAULT_EXPERTS_LAYOUT } from '../moe-facts.js';
import { gqaAttention, skeletonClasses } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';

/** OLMoE-1B-7B. */
export const olmoe: ArchitectureDescriptor = {
  modelType: 'olmoe',
  causalLm: 'OlmoeForCausalLM',
  defaults: {
    vocab_size: 50304, hidden_size: 2048, intermediate_size: 2048, num_hidden_layers: 16,
    num_attention_heads: 16, hidden_act: 'silu', tie_word_embeddings: false, attention_bias: false,
    num_experts: 64, num_experts_per_tok: 8,
  },
  aliases: { num_experts: 'num_local_experts', num_local_experts: 'num_experts' },
  build(m) {
    const c = skeletonClasses('Olmoe');
    const bias = m.cfg.bool('attention_bias', false);
    const attention = { ...gqaAttention(m.cfg, 'OlmoeAttention', bias), qkNorm: 'full' as const };
    const e = m.cfg.int('num_experts');
    const inter = m.cfg.int('intermediate_size');
    m.causalLm(c, (_, layer) => {
      m.attention(layer, 'self_attn', attention, c.norm);
      m.routedMoe(layer, {
        name: 'mlp',
        blockCls: 'OlmoeSparseMoeBlock',
        routerName: 'gate',
        routerCls: 'OlmoeTopKRouter',
        experts: { cls: 'OlmoeExperts', numExperts: e, intermediate: inter, layout: DEFAULT_EXPERTS_LAYOUT, act: true },
      });
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
