/** `mixtral` → `MixtralForCausalLM`: every layer sparse, router `gate` before fused experts. */
import { DEFAULT_EXPERTS_LAYOUT } from '../moe-facts.js';
import { gqaAttention, skeletonClasses } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';

/** Mixtral 8x7B / 8x22B. */
export const mixtral: ArchitectureDescriptor = {
  modelType: 'mixtral',
  causalLm: 'MixtralForCausalLM',
  defaults: {
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
    num_attention_heads: 32, num_key_value_heads: 8, hidden_act: 'silu', tie_word_embeddings: false,
    num_local_experts: 8, num_experts_per_tok: 2,
  },
  aliases: { num_experts: 'num_local_experts', num_local_experts: 'num_experts' },
  build(m) {
    const c = skeletonClasses('Mixtral');
    const attention = gqaAttention(m.cfg, 'MixtralAttention', false);
    const e = m.cfg.int('num_local_experts');
    const inter = m.cfg.int('intermediate_size');
    m.causalLm(c, (_, layer) => {
      m.attention(layer, 'self_attn', attention, c.norm);
      m.routedMoe(layer, {
        name: 'mlp',
        blockCls: 'MixtralSparseMoeBlock',
        routerName: 'gate',
        routerCls: 'MixtralTopKRouter',
        experts: { cls: 'MixtralExperts', numExperts: e, intermediate: inter, layout: DEFAULT_EXPERTS_LAYOUT, act: true },
      });
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
