/**
 * `gpt_oss` → `GptOssForCausalLM`: attention sinks, a biased router, and
 * experts declared `@use_experts_implementation(is_concatenated=False,
 * is_transposed=True, has_bias=True)`: `gate_up_proj [E, H, 2I]` with gate
 * and up interleaved, `down_proj [E, I, H]`, biases for both.
 */
import type { ExpertsImplementation } from '../moe-facts.js';
import { gqaAttention, skeletonClasses } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';

const GPT_OSS_LAYOUT: ExpertsImplementation = { isConcatenated: false, isTransposed: true, hasBias: true, hasGate: true };

/** gpt-oss-20b / gpt-oss-120b. */
export const gptOss: ArchitectureDescriptor = {
  modelType: 'gpt_oss',
  causalLm: 'GptOssForCausalLM',
  defaults: {
    vocab_size: 201088, hidden_size: 2880, intermediate_size: 2880, num_hidden_layers: 36,
    num_attention_heads: 64, num_key_value_heads: 8, head_dim: 64, hidden_act: 'silu',
    tie_word_embeddings: false, attention_bias: true, num_local_experts: 128, num_experts_per_tok: 4,
  },
  aliases: { num_experts: 'num_local_experts', num_local_experts: 'num_experts' },
  build(m) {
    const c = skeletonClasses('GptOss');
    const heads = m.cfg.int('num_attention_heads');
    const bias = m.cfg.bool('attention_bias', true);
    const attention = { ...gqaAttention(m.cfg, 'GptOssAttention', bias), ownParams: [['sinks', [heads]]] as const };
    const e = m.cfg.int('num_local_experts');
    const inter = m.cfg.int('intermediate_size');
    m.causalLm(c, (_, layer) => {
      m.attention(layer, 'self_attn', attention, c.norm);
      m.routedMoe(layer, {
        name: 'mlp',
        blockCls: 'GptOssMLP',
        routerName: 'router',
        routerCls: 'GptOssTopKRouter',
        routerBias: true,
        experts: { cls: 'GptOssExperts', numExperts: e, intermediate: inter, layout: GPT_OSS_LAYOUT, act: false },
      });
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
