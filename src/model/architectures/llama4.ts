/**
 * `llama4_text` → `Llama4ForCausalLM` (and the `text_config` of a
 * multimodal `llama4` config): MoE on `moe_layers` (default every
 * `interleave_moe_layer_step`-th layer), a router that subclasses
 * `nn.Linear`, one shared expert, and experts stored transposed
 * (`gate_up_proj [E, H, 2I]`, `down_proj [E, I, H]`) in a class without
 * `@use_experts_implementation`.
 */
import type { ExpertsImplementation } from '../moe-facts.js';
import { headDim, kvHeads } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';

const LLAMA4_LAYOUT: ExpertsImplementation = { isConcatenated: true, isTransposed: true, hasBias: false, hasGate: true };

/** Llama 4 Scout / Maverick (text model). */
export const llama4Text: ArchitectureDescriptor = {
  modelType: 'llama4_text',
  causalLm: 'Llama4ForCausalLM',
  defaults: {
    vocab_size: 202048, hidden_size: 5120, intermediate_size: 8192, intermediate_size_mlp: 16384,
    num_hidden_layers: 48, num_attention_heads: 40, num_key_value_heads: 8, head_dim: 128, hidden_act: 'silu',
    tie_word_embeddings: false, attention_bias: false, use_qk_norm: true, num_local_experts: 16,
    num_experts_per_tok: 1, interleave_moe_layer_step: 1, no_rope_layer_interval: 4,
  },
  build(m) {
    const cfg = m.cfg;
    const n = cfg.int('num_hidden_layers');
    const step = Math.max(1, cfg.optInt('interleave_moe_layer_step') ?? 1);
    const moeLayers = new Set(cfg.intList('moe_layers') ?? Array.from({ length: n }, (_, i) => i).filter((i) => i >= step - 1 && (i - (step - 1)) % step === 0));
    const interval = cfg.optInt('no_rope_layer_interval') ?? 4;
    const given = cfg.intList('no_rope_layers');
    const useRope = given && given.length > 0 ? given : Array.from({ length: n }, (_, i) => ((i + 1) % interval !== 0 ? 1 : 0));
    const qkNorm = cfg.bool('use_qk_norm', true);
    const bias = cfg.bool('attention_bias', false);
    const attention = {
      cls: 'Llama4TextAttention',
      heads: cfg.int('num_attention_heads'),
      kvHeads: kvHeads(cfg),
      headDim: headDim(cfg),
      qkvBias: bias,
      oBias: bias,
    };
    const e = cfg.int('num_local_experts');
    const inter = cfg.int('intermediate_size');
    const mlpOpts = { cls: 'Llama4TextMLP', actName: 'activation_fn' };
    const c = {
      causalLm: 'Llama4ForCausalLM',
      model: 'Llama4TextModel',
      pretrained: 'Llama4PreTrainedModel',
      layer: 'Llama4TextDecoderLayer',
      norm: 'Llama4TextRMSNorm',
      rotary: 'Llama4TextRotaryEmbedding',
    };
    m.causalLm(c, (i, layer) => {
      const attn = m.attention(layer, 'self_attn', attention, c.norm);
      if (qkNorm && useRope[i]) m.module(attn, 'qk_norm', 'Llama4TextL2Norm');
      if (moeLayers.has(i)) {
        const block = m.module(layer, 'feed_forward', 'Llama4TextMoe');
        const experts = m.experts(block, 'experts', { cls: 'Llama4TextExperts', numExperts: e, intermediate: inter, layout: LLAMA4_LAYOUT, act: true });
        const router = m.router(block, 'router', 'Llama4Router', e, { linear: true });
        const shared = m.mlp(block, 'shared_expert', inter, mlpOpts);
        m.moeBlock({ block, experts, router, sharedExperts: shared, numExperts: e, intermediate: inter, layout: LLAMA4_LAYOUT, decorated: false });
      } else {
        m.mlp(layer, 'feed_forward', cfg.int('intermediate_size_mlp'), mlpOpts);
      }
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
