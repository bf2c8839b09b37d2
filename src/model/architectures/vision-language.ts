/**
 * Vision-language models transformers 5 builds in the Llava layout:
 * `<P>ForConditionalGeneration → model (<P>Model) → vision_tower,
 * multi_modal_projector, language_model (the text model's `…Model`)`, and
 * `lm_head` at the root. `llava` (CLIP vision tower, two-Linear projector)
 * and `mistral3` (Pixtral vision tower, projector with RMSNorm and patch
 * merger). The text model is any descriptor's, from `text_config`.
 * `qwen2_5_vl` has the same root, `model` and `lm_head`, with `model.visual`
 * (no projector) and its own text model, `Qwen2_5_VLTextModel`.
 */
import { ACTIVATIONS, gqaAttention, type ModelBuilder } from './blocks.js';
import { ConfigReader } from './config-reader.js';
import type { ArchitectureDescriptor } from './descriptor.js';

/** One Llava-layout `model_type`. */
export interface VisionLanguageModel {
  readonly modelType: string;
  readonly cls: string;
  readonly model: string;
  readonly pretrained: string;
  /** `text_config.model_type` when absent, and the text config used when `text_config` is absent. */
  readonly textType: string;
  readonly textFallback: Readonly<Record<string, unknown>>;
  /** The text model's own descriptor, where it is no causal LM's (else the descriptor of `text_config.model_type`). */
  readonly textModel?: ArchitectureDescriptor;
  /** Published configs may be flat: without `text_config`, the text fields sit at the top level. */
  readonly flatText?: boolean;
  /** The text config as the forward executor runs it text only, where it runs as another `model_type`. */
  readonly textOnly?: (text: Record<string, unknown>) => Record<string, unknown>;
  /** The vision config used when `vision_config` is absent. */
  readonly visionFallback: Readonly<Record<string, unknown>>;
  /** `multimodal_projector_bias` default. */
  readonly projectorBias: boolean;
  /** Whether `lm_head` shares the embedding's Parameter, as the config class decides. */
  readonly tied: (config: Readonly<Record<string, unknown>>, text: Readonly<Record<string, unknown>>) => boolean;
  /** Adds the vision tower (and projector) under `model`. */
  readonly parts: (m: ModelBuilder, model: number, vision: ConfigReader, config: ConfigReader, textHidden: number) => void;
}

const CLIP_VISION_DEFAULTS: Readonly<Record<string, unknown>> = {
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3,
  image_size: 224, patch_size: 32, hidden_act: 'quick_gelu',
};
const PIXTRAL_DEFAULTS: Readonly<Record<string, unknown>> = {
  hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, num_channels: 3,
  image_size: 1024, patch_size: 16, hidden_act: 'gelu',
};

function act(m: ModelBuilder, parent: number, name: string, hiddenAct: string): number {
  return m.module(parent, name, ACTIVATIONS[hiddenAct] ?? 'SiLUActivation');
}

/** An int that a config may also give as `[h, w]` (its first entry, as the square sizes here assume). */
function side(cfg: ConfigReader, key: string): number {
  const list = cfg.intList(key);
  return list && list.length > 0 ? list[0]! : cfg.int(key);
}

function conv2d(m: ModelBuilder, parent: number, name: string, vision: ConfigReader, h: number): number {
  m.b.defineClass('Conv2d', ['_ConvNd', 'Module']);
  const p = side(vision, 'patch_size');
  return m.module(parent, name, 'Conv2d', [['weight', [h, vision.int('num_channels'), p, p]]]);
}

/** Vision layers whose features the projector concatenates (`vision_feature_layer`: one index or a list). */
function featureLayers(config: ConfigReader): number {
  const v = config.get('vision_feature_layer');
  return Array.isArray(v) ? v.length : 1;
}

/** `CLIPVisionModel` (patch and position embeddings, pre/post LayerNorms, encoder) and `LlavaMultiModalProjector`. */
function llavaParts(m: ModelBuilder, model: number, vision: ConfigReader, config: ConfigReader, textHidden: number): void {
  const b = m.b;
  b.defineClass('CLIPVisionModel', ['CLIPPreTrainedModel', 'PreTrainedModel', 'Module']);
  b.defineClass('CLIPEncoderLayer', ['GradientCheckpointingLayer', 'Module']);
  const h = vision.int('hidden_size');
  const inter = vision.int('intermediate_size');
  const tower = m.module(model, 'vision_tower', 'CLIPVisionModel');
  const embeddings = m.module(tower, 'embeddings', 'CLIPVisionEmbeddings', [['class_embedding', [h]]]);
  conv2d(m, embeddings, 'patch_embedding', vision, h);
  m.module(embeddings, 'position_embedding', 'Embedding', [['weight', [Math.floor(side(vision, 'image_size') / side(vision, 'patch_size')) ** 2 + 1, h]]]);
  m.layerNorm(tower, 'pre_layrnorm', h);
  const layers = m.module(m.module(tower, 'encoder', 'CLIPEncoder'), 'layers', 'ModuleList');
  const hiddenAct = vision.str('hidden_act', 'quick_gelu');
  for (let i = 0; i < vision.int('num_hidden_layers'); i++) {
    const layer = m.module(layers, String(i), 'CLIPEncoderLayer');
    const attn = m.module(layer, 'self_attn', 'CLIPAttention');
    for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) m.linear(attn, p, h, h, true);
    m.layerNorm(layer, 'layer_norm1', h);
    const mlp = m.module(layer, 'mlp', 'CLIPMLP');
    act(m, mlp, 'activation_fn', hiddenAct);
    m.linear(mlp, 'fc1', inter, h, true);
    m.linear(mlp, 'fc2', h, inter, true);
    m.layerNorm(layer, 'layer_norm2', h);
  }
  m.layerNorm(tower, 'post_layernorm', h);
  const bias = config.bool('multimodal_projector_bias', true);
  const projector = m.module(model, 'multi_modal_projector', 'LlavaMultiModalProjector');
  m.linear(projector, 'linear_1', textHidden, h * featureLayers(config), bias);
  act(m, projector, 'act', config.str('projector_hidden_act', 'gelu'));
  m.linear(projector, 'linear_2', textHidden, textHidden, bias);
}

/** `PixtralVisionModel` (patch convolution, RMSNorm, transformer) and `Mistral3MultiModalProjector` (RMSNorm, patch merger, two Linears). */
function mistral3Parts(m: ModelBuilder, model: number, vision: ConfigReader, config: ConfigReader, textHidden: number): void {
  const b = m.b;
  b.defineClass('PixtralVisionModel', ['PixtralPreTrainedModel', 'PreTrainedModel', 'Module']);
  b.defineClass('PixtralAttentionLayer', ['GradientCheckpointingLayer', 'Module']);
  const h = vision.int('hidden_size');
  const inter = vision.int('intermediate_size');
  const tower = m.module(model, 'vision_tower', 'PixtralVisionModel');
  conv2d(m, tower, 'patch_conv', vision, h);
  m.norm(tower, 'ln_pre', 'PixtralRMSNorm', h);
  const layers = m.module(m.module(tower, 'transformer', 'PixtralTransformer'), 'layers', 'ModuleList');
  const hiddenAct = vision.str('hidden_act', 'gelu');
  for (let i = 0; i < vision.int('num_hidden_layers'); i++) {
    const layer = m.module(layers, String(i), 'PixtralAttentionLayer');
    m.norm(layer, 'attention_norm', 'PixtralRMSNorm', h);
    const mlp = m.module(layer, 'feed_forward', 'PixtralMLP');
    m.linear(mlp, 'gate_proj', inter, h);
    m.linear(mlp, 'up_proj', inter, h);
    m.linear(mlp, 'down_proj', h, inter);
    act(m, mlp, 'act_fn', hiddenAct);
    const attn = m.module(layer, 'attention', 'PixtralAttention');
    for (const p of ['k_proj', 'v_proj', 'q_proj', 'o_proj']) m.linear(attn, p, h, h);
    m.norm(layer, 'ffn_norm', 'PixtralRMSNorm', h);
  }
  m.module(tower, 'patch_positional_embedding', 'PixtralVisionRotaryEmbedding');
  const merge = config.optInt('spatial_merge_size') ?? 2;
  const bias = config.bool('multimodal_projector_bias', false);
  const projector = m.module(model, 'multi_modal_projector', 'Mistral3MultiModalProjector');
  m.norm(projector, 'norm', 'Mistral3RMSNorm', h);
  m.linear(m.module(projector, 'patch_merger', 'Mistral3PatchMerger'), 'merging_layer', h, h * merge * merge);
  m.linear(projector, 'linear_1', textHidden, h * featureLayers(config), bias);
  act(m, projector, 'act', config.str('projector_hidden_act', 'gelu'));
  m.linear(projector, 'linear_2', textHidden, textHidden, bias);
}

/** `Qwen2_5_VisionTransformerPretrainedModel`: 3-D patch convolution, blocks with fused `qkv`, the patch merger. */
function qwen25VlParts(m: ModelBuilder, model: number, vision: ConfigReader): void {
  const b = m.b;
  b.defineClass('Qwen2_5_VisionTransformerPretrainedModel', ['Qwen2_5_VLPreTrainedModel', 'PreTrainedModel', 'Module']);
  b.defineClass('Qwen2_5_VLVisionBlock', ['GradientCheckpointingLayer', 'Module']);
  b.defineClass('Conv3d', ['_ConvNd', 'Module']);
  const h = vision.int('hidden_size');
  const inter = vision.int('intermediate_size');
  const p = side(vision, 'patch_size');
  const visual = m.module(model, 'visual', 'Qwen2_5_VisionTransformerPretrainedModel');
  const embed = m.module(visual, 'patch_embed', 'Qwen2_5_VisionPatchEmbed');
  m.module(embed, 'proj', 'Conv3d', [['weight', [h, vision.int('in_channels'), side(vision, 'temporal_patch_size'), p, p]]]);
  m.module(visual, 'rotary_pos_emb', 'Qwen2_5_VLVisionRotaryEmbedding');
  const blocks = m.module(visual, 'blocks', 'ModuleList');
  const hiddenAct = vision.str('hidden_act', 'silu');
  for (let i = 0; i < vision.int('depth'); i++) {
    const block = m.module(blocks, String(i), 'Qwen2_5_VLVisionBlock');
    m.norm(block, 'norm1', 'Qwen2_5_VLRMSNorm', h);
    m.norm(block, 'norm2', 'Qwen2_5_VLRMSNorm', h);
    const attn = m.module(block, 'attn', 'Qwen2_5_VLVisionAttention');
    m.linear(attn, 'qkv', 3 * h, h, true);
    m.linear(attn, 'proj', h, h, true);
    const mlp = m.module(block, 'mlp', 'Qwen2_5_VLMLP');
    m.linear(mlp, 'gate_proj', inter, h, true);
    m.linear(mlp, 'up_proj', inter, h, true);
    m.linear(mlp, 'down_proj', h, inter, true);
    act(m, mlp, 'act_fn', hiddenAct);
  }
  const merge = vision.int('spatial_merge_size');
  const merged = h * merge * merge;
  const merger = m.module(visual, 'merger', 'Qwen2_5_VLPatchMerger');
  m.norm(merger, 'ln_q', 'Qwen2_5_VLRMSNorm', h);
  const seq = m.module(merger, 'mlp', 'Sequential');
  m.linear(seq, '0', merged, merged, true);
  m.module(seq, '1', 'GELU');
  m.linear(seq, '2', vision.int('out_hidden_size'), merged, true);
}

/** `Qwen2_5_VLTextModel`: the Qwen2 decoder (q/k/v biases) under the Qwen2.5-VL class names. */
const qwen25VlText: ArchitectureDescriptor = {
  modelType: 'qwen2_5_vl_text',
  causalLm: 'Qwen2_5_VLForConditionalGeneration',
  defaults: {
    vocab_size: 152064, hidden_size: 8192, intermediate_size: 29568, num_hidden_layers: 80, num_attention_heads: 64,
    num_key_value_heads: 8, hidden_act: 'silu', tie_word_embeddings: false,
  },
  build(m) {
    const c = {
      causalLm: 'Qwen2_5_VLForConditionalGeneration',
      model: 'Qwen2_5_VLTextModel',
      pretrained: 'Qwen2_5_VLPreTrainedModel',
      layer: 'Qwen2_5_VLDecoderLayer',
      norm: 'Qwen2_5_VLRMSNorm',
      rotary: 'Qwen2_5_VLRotaryEmbedding',
    };
    const attention = gqaAttention(m.cfg, 'Qwen2_5_VLAttention', true, false);
    const intermediate = m.cfg.int('intermediate_size');
    m.causalLm(c, (_, layer) => {
      m.attention(layer, 'self_attn', attention, c.norm);
      m.mlp(layer, 'mlp', intermediate, { cls: 'Qwen2MLP' });
      m.norm(layer, 'input_layernorm', c.norm, m.hidden);
      m.norm(layer, 'post_attention_layernorm', c.norm, m.hidden);
    });
  },
};

const flag = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);

/** `LlavaForConditionalGeneration` (llava-1.5, llava-interleave, Pixtral-12B as published for transformers). */
export const llavaModel: VisionLanguageModel = {
  modelType: 'llava',
  cls: 'LlavaForConditionalGeneration',
  model: 'LlavaModel',
  pretrained: 'LlavaPreTrainedModel',
  textType: 'llama',
  textFallback: {},
  visionFallback: { model_type: 'clip_vision_model', intermediate_size: 4096, hidden_size: 1024, patch_size: 14, image_size: 336, num_hidden_layers: 24, num_attention_heads: 16 },
  projectorBias: true,
  // LlavaConfig: tie_word_embeddings (default false), else the text config's (older checkpoints saved it there).
  tied: (config, text) => flag(config['tie_word_embeddings']) || (flag(text['tie_word_embeddings']) ?? false),
  parts: llavaParts,
};

/** `Mistral3ForConditionalGeneration` (Mistral-Small-3.1 / 3.2, Devstral-Small, Magistral-Small). */
export const mistral3Model: VisionLanguageModel = {
  modelType: 'mistral3',
  cls: 'Mistral3ForConditionalGeneration',
  model: 'Mistral3Model',
  pretrained: 'Mistral3PreTrainedModel',
  textType: 'mistral',
  textFallback: {
    model_type: 'mistral', head_dim: 128, hidden_act: 'silu', hidden_size: 5120, intermediate_size: 32768, num_attention_heads: 32,
    num_hidden_layers: 40, num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 1e9, vocab_size: 131072,
  },
  visionFallback: { model_type: 'pixtral', intermediate_size: 4096, hidden_size: 1024, patch_size: 14, image_size: 1540, num_hidden_layers: 24, num_attention_heads: 16, head_dim: 64, hidden_act: 'gelu' },
  projectorBias: false,
  // Mistral3Config: tie_word_embeddings defaults to true (transformers then leaves a stored, different lm_head untied).
  tied: (config) => flag(config['tie_word_embeddings']) ?? true,
  parts: mistral3Parts,
};

/** `Qwen2_5_VLForConditionalGeneration` (Qwen2.5-VL 3B / 7B / 32B / 72B). */
export const qwen25VlModel: VisionLanguageModel = {
  modelType: 'qwen2_5_vl',
  cls: 'Qwen2_5_VLForConditionalGeneration',
  model: 'Qwen2_5_VLModel',
  pretrained: 'Qwen2_5_VLPreTrainedModel',
  textType: 'qwen2_5_vl_text',
  textFallback: {},
  textModel: qwen25VlText,
  flatText: true,
  // Text only, the three M-RoPE position rows are equal, so each frequency section rotates by the same
  // position: plain RoPE. The decoder is Qwen2's (q/k/v biases, no o_proj bias).
  textOnly: (text) => {
    const rope = (text['rope_parameters'] ?? text['rope_scaling']) as Record<string, unknown> | null | undefined;
    const plain = rope && (rope['rope_type'] === 'mrope' || rope['type'] === 'mrope') ? { ...rope, rope_type: 'default', type: 'default' } : rope;
    return { ...text, model_type: 'qwen2', ...(plain ? { rope_parameters: plain, rope_scaling: plain } : {}) };
  },
  visionFallback: {},
  projectorBias: false,
  // Qwen2_5_VLConfig: tie_word_embeddings (default false), else the text config's (pre-v5 saves).
  tied: (config, text) => flag(config['tie_word_embeddings']) || (flag(text['tie_word_embeddings']) ?? false),
  parts: (m, model, vision) => qwen25VlParts(m, model, vision),
};

/** Vision-language models in the Llava layout (and Qwen2.5-VL's variant of it) by `model_type`. */
export const VISION_LANGUAGE: ReadonlyMap<string, VisionLanguageModel> = new Map([llavaModel, mistral3Model, qwen25VlModel].map((v) => [v.modelType, v] as const));

/** The vision tower types each Llava-layout model is built with here. */
const TOWERS: Readonly<Record<string, { readonly type: string; readonly defaults: Readonly<Record<string, unknown>> }>> = {
  llava: { type: 'clip_vision_model', defaults: CLIP_VISION_DEFAULTS },
  mistral3: { type: 'pixtral', defaults: PIXTRAL_DEFAULTS },
  qwen2_5_vl: {
    type: 'qwen2_5_vl_vision',
    defaults: {
      depth: 32, hidden_size: 3584, hidden_act: 'silu', intermediate_size: 3420, num_heads: 16, in_channels: 3, patch_size: 14,
      spatial_merge_size: 2, temporal_patch_size: 2, out_hidden_size: 3584,
    },
  },
};

/** The text config of a Llava-layout config: `text_config` (or the class's fallback), its `model_type`, dtype and tying as the composite config sets them. */
export function visionLanguageText(v: VisionLanguageModel, config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const given = config['text_config'];
  const flat = (): Record<string, unknown> => {
    const { vision_config: _vision, model_type: _type, architectures: _archs, ...rest } = config;
    return rest;
  };
  const text = typeof given === 'object' && given !== null ? { ...(given as Record<string, unknown>) } : v.flatText ? flat() : { ...v.textFallback };
  if (typeof text['model_type'] !== 'string') text['model_type'] = v.textType;
  if (text['dtype'] === undefined && text['torch_dtype'] === undefined) text['dtype'] = config['dtype'] ?? config['torch_dtype'];
  text['tie_word_embeddings'] = v.tied(config, text);
  return text;
}

/** Reads the vision config of a Llava-layout config; `undefined` with the tower type when quantc does not build that tower. */
export function visionLanguageVision(v: VisionLanguageModel, config: Readonly<Record<string, unknown>>): { reader?: ConfigReader; type: string } {
  const given = config['vision_config'];
  const raw = typeof given === 'object' && given !== null ? (given as Record<string, unknown>) : v.visionFallback;
  const tower = TOWERS[v.modelType]!;
  const type = typeof raw['model_type'] === 'string' ? (raw['model_type'] as string) : tower.type;
  if (type !== tower.type) return { type };
  return { reader: new ConfigReader(raw, tower.defaults, type), type };
}
