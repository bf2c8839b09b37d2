/**
 * The dense decoder every Llama-like model shares: q/k/v/o attention, a
 * gated MLP and two RMSNorms per layer. The four dense descriptors differ
 * only in biases and q/k norms.
 */
import { gqaAttention, skeletonClasses, type ModelBuilder } from './blocks.js';

/** Per-model differences of the dense decoder. */
export interface DenseOptions {
  readonly prefix: string;
  readonly qkvBias: boolean;
  readonly oBias: boolean;
  readonly mlpBias: boolean;
  readonly qkNorm: boolean;
}

/** Builds `<prefix>ForCausalLM` with a dense MLP in every layer. */
export function buildDense(m: ModelBuilder, o: DenseOptions): void {
  const c = skeletonClasses(o.prefix);
  const attention = {
    ...gqaAttention(m.cfg, `${o.prefix}Attention`, o.qkvBias, o.oBias),
    ...(o.qkNorm ? { qkNorm: 'head' as const } : {}),
  };
  const intermediate = m.cfg.int('intermediate_size');
  m.causalLm(c, (_, layer) => {
    m.attention(layer, 'self_attn', attention, c.norm);
    m.mlp(layer, 'mlp', intermediate, { cls: `${o.prefix}MLP`, bias: o.mlpBias });
    m.norm(layer, 'input_layernorm', c.norm, m.hidden);
    m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
  });
}
