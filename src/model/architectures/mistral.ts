/** `mistral` → `MistralForCausalLM`: Llama layout without biases. */
import type { ArchitectureDescriptor } from './descriptor.js';
import { buildDense } from './dense.js';

/** Mistral 7B and relatives. */
export const mistral: ArchitectureDescriptor = {
  modelType: 'mistral',
  causalLm: 'MistralForCausalLM',
  defaults: {
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
    num_attention_heads: 32, num_key_value_heads: 8, hidden_act: 'silu', tie_word_embeddings: false,
  },
  build(m) {
    buildDense(m, { prefix: 'Mistral', qkvBias: false, oBias: false, mlpBias: false, qkNorm: false });
  },
};
