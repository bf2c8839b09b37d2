/** `qwen2` → `Qwen2ForCausalLM`: q/k/v always carry a bias, o_proj never. */
import type { ArchitectureDescriptor } from './descriptor.js';
import { buildDense } from './dense.js';

/** Qwen2 and Qwen2.5 dense models. */
export const qwen2: ArchitectureDescriptor = {
  modelType: 'qwen2',
  causalLm: 'Qwen2ForCausalLM',
  defaults: {
    vocab_size: 151936, hidden_size: 4096, intermediate_size: 22016, num_hidden_layers: 32,
    num_attention_heads: 32, hidden_act: 'silu', tie_word_embeddings: false,
  },
  build(m) {
    buildDense(m, { prefix: 'Qwen2', qkvBias: true, oBias: false, mlpBias: false, qkNorm: false });
  },
};
