/** `qwen3` → `Qwen3ForCausalLM`: per-head q/k RMSNorms, biases follow `attention_bias`. */
import type { ArchitectureDescriptor } from './descriptor.js';
import { buildDense } from './dense.js';

/** Qwen3 dense models. */
export const qwen3: ArchitectureDescriptor = {
  modelType: 'qwen3',
  causalLm: 'Qwen3ForCausalLM',
  defaults: {
    vocab_size: 151936, hidden_size: 4096, intermediate_size: 22016, num_hidden_layers: 32,
    num_attention_heads: 32, head_dim: 128, hidden_act: 'silu', tie_word_embeddings: false,
    attention_bias: false,
  },
  build(m) {
    const bias = m.cfg.bool('attention_bias', false);
    buildDense(m, { prefix: 'Qwen3', qkvBias: bias, oBias: bias, mlpBias: false, qkNorm: true });
  },
};
