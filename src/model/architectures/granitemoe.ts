/**
 * `granitemoe` → `GraniteMoeForCausalLM`: the MoE block is
 * `block_sparse_moe` (after both norms), holding `router` then `experts`.
 */
import { DEFAULT_EXPERTS_LAYOUT } from '../moe-facts.js';
import { gqaAttention, skeletonClasses } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';

/** Granite 3.0 MoE (1B-A400M, 3B-A800M). */
export const granitemoe: ArchitectureDescriptor = {
  modelType: 'granitemoe',
  causalLm: 'GraniteMoeForCausalLM',
  defaults: {
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32,
    num_attention_heads: 32, hidden_act: 'silu', tie_word_embeddings: false, attention_bias: false,
    num_local_experts: 8, num_experts_per_tok: 2,
  },
  build(m) {
    const c = skeletonClasses('GraniteMoe');
    const attention = gqaAttention(m.cfg, 'GraniteMoeAttention', m.cfg.bool('attention_bias', false));
    const e = m.cfg.int('num_local_experts');
    const inter = m.cfg.int('intermediate_size');
    m.causalLm(c, (_, layer) => {
      m.attention(layer, 'self_attn', attention, c.norm);
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
      m.routedMoe(layer, {
        name: 'block_sparse_moe',
        blockCls: 'GraniteMoeMoE',
        routerName: 'router',
        routerCls: 'GraniteMoeTopKRouter',
        experts: { cls: 'GraniteMoeExperts', numExperts: e, intermediate: inter, layout: DEFAULT_EXPERTS_LAYOUT, act: true },
      });
    });
  },
};
