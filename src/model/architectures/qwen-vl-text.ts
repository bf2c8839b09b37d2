/**
 * The text models of the Qwen vision-language models (`…TextModel`): Qwen2's,
 * Qwen3's or Qwen3-MoE's decoder under the VL class names, and the config
 * they run as text only.
 */
import { gqaAttention } from './blocks.js';
import type { ArchitectureDescriptor } from './descriptor.js';
import { qwenMlp } from './qwen-moe.js';

/** Class names and attention of a Qwen-VL text model (`<P>TextModel`, a causal LM's `…Model` under its own names). */
interface QwenVlText {
  readonly modelType: string;
  readonly cls: string;
  readonly model: string;
  readonly pretrained: string;
  readonly layer: string;
  readonly attention: string;
  readonly mlp: string;
  readonly norm: string;
  readonly rotary: string;
  readonly defaults: Readonly<Record<string, unknown>>;
  /** Qwen2's decoder (q/k/v biases, head size hidden / heads) or Qwen3's (per-head q/k norms, `attention_bias`, `head_dim`). */
  readonly decoder: 'qwen2' | 'qwen3';
  /** Qwen3-MoE's sparse blocks (`mlp_only_layers`, `decoder_sparse_step`), with the classes' prefix and block class. */
  readonly moe?: { readonly prefix: string; readonly blockCls: string };
}

/** The text model of a Qwen-VL model: Qwen2's or Qwen3's decoder under the VL class names. */
function qwenVlText(t: QwenVlText): ArchitectureDescriptor {
  return {
    modelType: t.modelType,
    causalLm: t.cls,
    defaults: t.defaults,
    build(m) {
      const c = { causalLm: t.cls, model: t.model, pretrained: t.pretrained, layer: t.layer, norm: t.norm, rotary: t.rotary };
      const heads = m.cfg.int('num_attention_heads');
      const bias = t.decoder === 'qwen3' && m.cfg.bool('attention_bias', false);
      // Qwen2-VL's attention takes hidden / heads whatever `head_dim` says; Qwen3-VL's reads `head_dim`.
      const attention = t.decoder === 'qwen2'
        ? { ...gqaAttention(m.cfg, t.attention, true, false), headDim: Math.floor(m.hidden / Math.max(1, heads)) }
        : { ...gqaAttention(m.cfg, t.attention, bias, bias), qkNorm: 'head' as const };
      const intermediate = m.cfg.int('intermediate_size');
      m.causalLm(c, (i, layer) => {
        m.attention(layer, 'self_attn', attention, c.norm);
        if (t.moe) qwenMlp(m, layer, i, { ...t.moe, routerFirst: false, shared: false });
        else m.mlp(layer, 'mlp', intermediate, { cls: t.mlp });
        m.norm(layer, 'input_layernorm', c.norm, m.hidden);
        m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
      });
    },
  };
}

/** The text config defaults of Qwen2-VL and Qwen2.5-VL alike (their 72B), as transformers' config classes give them. */
const QWEN2_VL_TEXT_DEFAULTS = {
  vocab_size: 152064, hidden_size: 8192, intermediate_size: 29568, num_hidden_layers: 80, num_attention_heads: 64,
  num_key_value_heads: 8, hidden_act: 'silu', tie_word_embeddings: false,
};

/** `Qwen2_5_VLTextModel`: the Qwen2 decoder (q/k/v biases) under the Qwen2.5-VL class names. */
export const qwen25VlText = qwenVlText({
  modelType: 'qwen2_5_vl_text',
  cls: 'Qwen2_5_VLForConditionalGeneration',
  model: 'Qwen2_5_VLTextModel',
  pretrained: 'Qwen2_5_VLPreTrainedModel',
  layer: 'Qwen2_5_VLDecoderLayer',
  attention: 'Qwen2_5_VLAttention',
  mlp: 'Qwen2MLP',
  norm: 'Qwen2_5_VLRMSNorm',
  rotary: 'Qwen2_5_VLRotaryEmbedding',
  defaults: QWEN2_VL_TEXT_DEFAULTS,
  decoder: 'qwen2',
});

/** `Qwen2VLTextModel`: the Qwen2 decoder under the Qwen2-VL class names. */
export const qwen2VlText = qwenVlText({
  modelType: 'qwen2_vl_text',
  cls: 'Qwen2VLForConditionalGeneration',
  model: 'Qwen2VLTextModel',
  pretrained: 'Qwen2VLPreTrainedModel',
  layer: 'Qwen2VLDecoderLayer',
  attention: 'Qwen2VLAttention',
  mlp: 'Qwen2MLP',
  norm: 'Qwen2VLRMSNorm',
  rotary: 'Qwen2VLRotaryEmbedding',
  defaults: QWEN2_VL_TEXT_DEFAULTS,
  decoder: 'qwen2',
});

/** `Qwen3VLTextModel`: the Qwen3 decoder (per-head q/k norms) under the Qwen3-VL class names. */
export const qwen3VlText = qwenVlText({
  modelType: 'qwen3_vl_text',
  cls: 'Qwen3VLForConditionalGeneration',
  model: 'Qwen3VLTextModel',
  pretrained: 'Qwen3VLPreTrainedModel',
  layer: 'Qwen3VLTextDecoderLayer',
  attention: 'Qwen3VLTextAttention',
  mlp: 'Qwen3VLTextMLP',
  norm: 'Qwen3VLTextRMSNorm',
  rotary: 'Qwen3VLTextRotaryEmbedding',
  defaults: {
    vocab_size: 151936, hidden_size: 4096, intermediate_size: 22016, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 32, head_dim: 128, hidden_act: 'silu', tie_word_embeddings: false, attention_bias: false,
  },
  decoder: 'qwen3',
});

/** `Qwen3VLMoeTextModel`: Qwen3-MoE's decoder (fused experts after the router's block position, dense `mlp_only_layers`) under the Qwen3-VL-MoE class names. */
export const qwen3VlMoeText: ArchitectureDescriptor = {
  ...qwenVlText({
    modelType: 'qwen3_vl_moe_text',
    cls: 'Qwen3VLMoeForConditionalGeneration',
    model: 'Qwen3VLMoeTextModel',
    pretrained: 'Qwen3VLMoePreTrainedModel',
    layer: 'Qwen3VLMoeTextDecoderLayer',
    attention: 'Qwen3VLMoeTextAttention',
    mlp: 'Qwen3VLMoeTextMLP',
    norm: 'Qwen3VLMoeTextRMSNorm',
    rotary: 'Qwen3VLMoeTextRotaryEmbedding',
    defaults: {
      vocab_size: 151936, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 24, num_attention_heads: 16,
      num_key_value_heads: 16, hidden_act: 'silu', tie_word_embeddings: false, attention_bias: false, moe_intermediate_size: 1408,
      num_experts: 60, num_experts_per_tok: 4, decoder_sparse_step: 1, mlp_only_layers: [],
    },
    decoder: 'qwen3',
    moe: { prefix: 'Qwen3VLMoeText', blockCls: 'Qwen3VLMoeTextSparseMoeBlock' },
  }),
  aliases: { num_experts: 'num_local_experts', num_local_experts: 'num_experts' },
};

/**
 * The text config a Qwen-VL text model runs as text only: the causal LM of
 * its decoder (`qwen2` / `qwen3`). Without images the M-RoPE position rows
 * (temporal, height, width) are all the token's position, so whichever
 * section (or interleaved slot) a frequency takes its row from, it rotates by
 * that position: plain RoPE.
 */
export function plainRope(decoder: 'qwen2' | 'qwen3' | 'qwen3_moe'): (text: Record<string, unknown>) => Record<string, unknown> {
  return (text) => {
    const rope = (text['rope_parameters'] ?? text['rope_scaling']) as Record<string, unknown> | null | undefined;
    const plain = rope && (rope['rope_type'] === 'mrope' || rope['type'] === 'mrope') ? { ...rope, rope_type: 'default', type: 'default' } : rope;
    return { ...text, model_type: decoder, ...(plain ? { rope_parameters: plain, rope_scaling: plain } : {}) };
  };
}
