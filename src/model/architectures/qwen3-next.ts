/**
 * `qwen3_next` → `Qwen3NextForCausalLM`: hybrid layers (`layer_types`:
 * Gated DeltaNet linear attention, full attention every
 * `full_attention_interval` layers) and a gated shared expert.
 */
import { headDim, kvHeads, skeletonClasses } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';
import { qwenMlp } from './qwen-moe.js';

const LINEAR_TYPES = new Set(['linear_attention', 'mamba', 'conv']);

/** Qwen3-Next-80B-A3B. */
export const qwen3Next: ArchitectureDescriptor = {
  modelType: 'qwen3_next',
  causalLm: 'Qwen3NextForCausalLM',
  defaults: {
    vocab_size: 151936, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 48,
    num_attention_heads: 16, num_key_value_heads: 2, head_dim: 256, hidden_act: 'silu',
    tie_word_embeddings: false, attention_bias: false, moe_intermediate_size: 512,
    shared_expert_intermediate_size: 512, num_experts: 512, num_experts_per_tok: 10, decoder_sparse_step: 1,
    mlp_only_layers: [], linear_num_key_heads: 16, linear_num_value_heads: 32, linear_key_head_dim: 128,
    linear_value_head_dim: 128, linear_conv_kernel_dim: 4, full_attention_interval: 4,
  },
  build(m) {
    const cfg = m.cfg;
    const c = skeletonClasses('Qwen3Next');
    const n = cfg.int('num_hidden_layers');
    const interval = Math.max(1, cfg.optInt('full_attention_interval') ?? 4);
    const types = cfg.strList('layer_types') ?? Array.from({ length: n }, (_, i) => ((i + 1) % interval ? 'linear_attention' : 'full_attention'));
    const bias = cfg.bool('attention_bias', false);
    const attention = {
      cls: 'Qwen3NextAttention',
      heads: cfg.int('num_attention_heads'),
      kvHeads: kvHeads(cfg),
      headDim: headDim(cfg),
      qkvBias: bias,
      oBias: bias,
      qMultiplier: 2,
      qkNorm: 'head' as const,
    };
    const nk = cfg.int('linear_num_key_heads');
    const nv = cfg.int('linear_num_value_heads');
    const keyDim = nk * cfg.int('linear_key_head_dim');
    const headV = cfg.int('linear_value_head_dim');
    const valueDim = nv * headV;
    const convDim = 2 * keyDim + valueDim;
    const kernel = cfg.int('linear_conv_kernel_dim');
    m.b.defineClass('Conv1d', ['_ConvNd', 'Module']);
    m.causalLm(c, (i, layer) => {
      // transformers remaps the legacy names `mamba` and `conv` to `linear_attention`.
      if (LINEAR_TYPES.has(types[i] ?? '')) {
        const la = m.module(layer, 'linear_attn', 'Qwen3NextGatedDeltaNet', [['dt_bias', [nv]], ['A_log', [nv]]]);
        m.module(la, 'conv1d', 'Conv1d', [['weight', [convDim, 1, kernel]]]);
        m.linear(la, 'in_proj_qkvz', 2 * keyDim + 2 * valueDim, m.hidden);
        m.linear(la, 'in_proj_ba', 2 * nv, m.hidden);
        m.norm(la, 'norm', 'Qwen3NextRMSNormGated', headV);
        m.linear(la, 'out_proj', m.hidden, valueDim);
      } else {
        m.attention(layer, 'self_attn', attention, c.norm);
      }
      qwenMlp(m, layer, i, { prefix: 'Qwen3Next', blockCls: 'Qwen3NextSparseMoeBlock', routerFirst: true, shared: true });
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};
