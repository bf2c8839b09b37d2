/** `llama` → `LlamaForCausalLM`: attention and MLP biases follow `attention_bias` / `mlp_bias`. */
import type { ArchitectureDescriptor } from './descriptor.js';
import { buildDense } from './dense.js';

/** Llama 2 / 3 / 3.1 / 3.2 / 3.3 and their fine-tunes. */
export const llama: ArchitectureDescriptor = {
  modelType: 'llama',
  causalLm: 'LlamaForCausalLM',
  defaults: {
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32,
    num_attention_heads: 32, hidden_act: 'silu', tie_word_embeddings: false, attention_bias: false,
    mlp_bias: false,
  },
  build(m) {
    const bias = m.cfg.bool('attention_bias', false);
    buildDense(m, { prefix: 'Llama', qkvBias: bias, oBias: bias, mlpBias: m.cfg.bool('mlp_bias', false), qkNorm: false });
  },
};
