/**
 * Vision-language models transformers 5 builds in the Llava layout:
 * `<P>ForConditionalGeneration → model (<P>Model) → vision_tower,
 * multi_modal_projector, language_model (the text model's `…Model`)`, and
 * `lm_head` at the root. `llava` (CLIP vision tower, two-Linear projector)
 * and `mistral3` (Pixtral vision tower, projector with RMSNorm and patch
 * merger). The text model is any descriptor's, from `text_config`.
 * `qwen2_5_vl`, `qwen2_vl`, `qwen3_vl` and `qwen3_vl_moe` have the same root,
 * `model` and `lm_head`, with `model.visual` (no projector; Qwen3-VL's with
 * deepstack mergers) and their own text model (`…TextModel`: Qwen2's,
 * Qwen3's or Qwen3-MoE's decoder). `idefics3` holds `model.vision_model`, `model.connector` and the
 * `text_config` model as `model.text_model`; `internvl` is in the Llava
 * layout with an InternViT tower and a LayerNorm projector.
 */
import { ACTIVATIONS, gqaAttention, type ModelBuilder } from './blocks.js';
import { ConfigReader } from './config-reader.js';
import type { ArchitectureDescriptor } from './descriptor.js';
import { qwenMlp } from './qwen-moe.js';

/** One vision-language `model_type`. */
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
  /** The text model's attribute under `model`: `language_model`, or Idefics3's `text_model`. */
  readonly textName?: string;
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
  /**
   * How checkpoints name the modules, as transformers' conversion mapping for
   * the class says: `llava` (`language_model.model.…`, `vision_tower.…`, …),
   * `qwen2-vl` (`model.…` for the language model, `visual.…`), or `as-built`
   * (the in-memory names: no mapping).
   */
  readonly stored: 'llava' | 'qwen2-vl' | 'as-built';
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

function conv2d(m: ModelBuilder, parent: number, name: string, vision: ConfigReader, h: number, bias = false): number {
  m.b.defineClass('Conv2d', ['_ConvNd', 'Module']);
  const p = side(vision, 'patch_size');
  return m.module(parent, name, 'Conv2d', bias ? [['weight', [h, vision.int('num_channels'), p, p]], ['bias', [h]]] : [['weight', [h, vision.int('num_channels'), p, p]]]);
}

/** An `[h, w]` config pair (`image_size`, `patch_size`), a single int meaning a square. */
function pair(cfg: ConfigReader, key: string): [number, number] {
  const list = cfg.intList(key);
  if (list && list.length >= 2) return [list[0]!, list[1]!];
  const v = list && list.length === 1 ? list[0]! : cfg.int(key);
  return [v, v];
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

/** `Qwen2VisionTransformerPretrainedModel`: 3-D patch convolution, LayerNorm blocks with fused `qkv` and an `fc1`/`fc2` MLP, the patch merger. */
function qwen2VlParts(m: ModelBuilder, model: number, vision: ConfigReader): void {
  const b = m.b;
  b.defineClass('Qwen2VisionTransformerPretrainedModel', ['Qwen2VLPreTrainedModel', 'PreTrainedModel', 'Module']);
  b.defineClass('Qwen2VLVisionBlock', ['GradientCheckpointingLayer', 'Module']);
  b.defineClass('Conv3d', ['_ConvNd', 'Module']);
  const e = vision.int('embed_dim');
  const ratio = vision.get('mlp_ratio');
  // `int(embed_dim * mlp_ratio)`: the ratio may be a float.
  const inter = Math.trunc(e * (typeof ratio === 'number' ? ratio : 4));
  const p = side(vision, 'patch_size');
  const visual = m.module(model, 'visual', 'Qwen2VisionTransformerPretrainedModel');
  const embed = m.module(visual, 'patch_embed', 'PatchEmbed');
  m.module(embed, 'proj', 'Conv3d', [['weight', [e, vision.int('in_channels'), side(vision, 'temporal_patch_size'), p, p]]]);
  m.module(visual, 'rotary_pos_emb', 'Qwen2VLVisionRotaryEmbedding');
  const blocks = m.module(visual, 'blocks', 'ModuleList');
  const hiddenAct = vision.str('hidden_act', 'quick_gelu');
  for (let i = 0; i < vision.int('depth'); i++) {
    const block = m.module(blocks, String(i), 'Qwen2VLVisionBlock');
    m.layerNorm(block, 'norm1', e);
    m.layerNorm(block, 'norm2', e);
    const attn = m.module(block, 'attn', 'VisionAttention');
    m.linear(attn, 'qkv', 3 * e, e, true);
    m.linear(attn, 'proj', e, e, true);
    const mlp = m.module(block, 'mlp', 'VisionMlp');
    m.linear(mlp, 'fc1', inter, e, true);
    act(m, mlp, 'act', hiddenAct);
    m.linear(mlp, 'fc2', e, inter, true);
  }
  const merge = vision.int('spatial_merge_size');
  const merged = e * merge * merge;
  const merger = m.module(visual, 'merger', 'PatchMerger');
  m.layerNorm(merger, 'ln_q', e);
  const seq = m.module(merger, 'mlp', 'Sequential');
  m.linear(seq, '0', merged, merged, true);
  m.module(seq, '1', 'GELU');
  m.linear(seq, '2', vision.int('hidden_size'), merged, true);
}

/**
 * `Qwen3VLVisionModel` (Qwen3-VL-MoE's `Qwen3VLMoeVisionModel` under its own prefix): biased 3-D patch
 * convolution, learned position table, LayerNorm blocks, the patch merger and the deepstack mergers.
 */
function qwen3VlParts(m: ModelBuilder, model: number, vision: ConfigReader, prefix = 'Qwen3VL'): void {
  const b = m.b;
  b.defineClass(`${prefix}VisionModel`, [`${prefix}PreTrainedModel`, 'PreTrainedModel', 'Module']);
  b.defineClass(`${prefix}VisionBlock`, ['GradientCheckpointingLayer', 'Module']);
  b.defineClass('Conv3d', ['_ConvNd', 'Module']);
  const h = vision.int('hidden_size');
  const inter = vision.int('intermediate_size');
  const p = side(vision, 'patch_size');
  const visual = m.module(model, 'visual', `${prefix}VisionModel`);
  const embed = m.module(visual, 'patch_embed', `${prefix}VisionPatchEmbed`);
  m.module(embed, 'proj', 'Conv3d', [['weight', [h, vision.int('in_channels'), side(vision, 'temporal_patch_size'), p, p]], ['bias', [h]]]);
  m.module(visual, 'pos_embed', 'Embedding', [['weight', [vision.int('num_position_embeddings'), h]]]);
  m.module(visual, 'rotary_pos_emb', `${prefix}VisionRotaryEmbedding`);
  const blocks = m.module(visual, 'blocks', 'ModuleList');
  const hiddenAct = vision.str('hidden_act', 'gelu_pytorch_tanh');
  for (let i = 0; i < vision.int('depth'); i++) {
    const block = m.module(blocks, String(i), `${prefix}VisionBlock`);
    m.layerNorm(block, 'norm1', h);
    m.layerNorm(block, 'norm2', h);
    const attn = m.module(block, 'attn', `${prefix}VisionAttention`);
    m.linear(attn, 'qkv', 3 * h, h, true);
    m.linear(attn, 'proj', h, h, true);
    const mlp = m.module(block, 'mlp', `${prefix}VisionMLP`);
    m.linear(mlp, 'linear_fc1', inter, h, true);
    m.linear(mlp, 'linear_fc2', h, inter, true);
    act(m, mlp, 'act_fn', hiddenAct);
  }
  const merge = vision.int('spatial_merge_size');
  const merged = h * merge * merge;
  const out = vision.int('out_hidden_size');
  // The main merger normalizes each patch before the shuffle; the deepstack mergers normalize after it.
  const merger = (parent: number, name: string, normDim: number): void => {
    const mm = m.module(parent, name, `${prefix}VisionPatchMerger`);
    m.layerNorm(mm, 'norm', normDim);
    m.linear(mm, 'linear_fc1', merged, merged, true);
    m.module(mm, 'act_fn', 'GELU');
    m.linear(mm, 'linear_fc2', out, merged, true);
  };
  merger(visual, 'merger', h);
  const deepstack = m.module(visual, 'deepstack_merger_list', 'ModuleList');
  const indexes = vision.intList('deepstack_visual_indexes') ?? [];
  for (let i = 0; i < indexes.length; i++) merger(deepstack, String(i), merged);
}

/** `Idefics3VisionTransformer` (SigLIP-style: biased patch convolution, position table, encoder, post LayerNorm) and `Idefics3Connector`. */
function idefics3Parts(m: ModelBuilder, model: number, vision: ConfigReader, config: ConfigReader, textHidden: number): void {
  const b = m.b;
  b.defineClass('Idefics3VisionTransformer', ['Idefics3PreTrainedModel', 'PreTrainedModel', 'Module']);
  b.defineClass('Idefics3EncoderLayer', ['GradientCheckpointingLayer', 'Module']);
  const h = vision.int('hidden_size');
  const inter = vision.int('intermediate_size');
  const tower = m.module(model, 'vision_model', 'Idefics3VisionTransformer');
  const embeddings = m.module(tower, 'embeddings', 'Idefics3VisionEmbeddings');
  conv2d(m, embeddings, 'patch_embedding', vision, h, true);
  m.module(embeddings, 'position_embedding', 'Embedding', [['weight', [Math.floor(side(vision, 'image_size') / side(vision, 'patch_size')) ** 2, h]]]);
  const layers = m.module(m.module(tower, 'encoder', 'Idefics3Encoder'), 'layers', 'ModuleList');
  const hiddenAct = vision.str('hidden_act', 'gelu_pytorch_tanh');
  for (let i = 0; i < vision.int('num_hidden_layers'); i++) {
    const layer = m.module(layers, String(i), 'Idefics3EncoderLayer');
    const attn = m.module(layer, 'self_attn', 'Idefics3VisionAttention');
    for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) m.linear(attn, p, h, h, true);
    m.layerNorm(layer, 'layer_norm1', h);
    const mlp = m.module(layer, 'mlp', 'Idefics3VisionMLP');
    act(m, mlp, 'activation_fn', hiddenAct);
    m.linear(mlp, 'fc1', inter, h, true);
    m.linear(mlp, 'fc2', h, inter, true);
    m.layerNorm(layer, 'layer_norm2', h);
  }
  m.layerNorm(tower, 'post_layernorm', h);
  const scale = config.int('scale_factor');
  const connector = m.module(model, 'connector', 'Idefics3Connector');
  m.linear(m.module(connector, 'modality_projection', 'Idefics3SimpleMLP'), 'proj', textHidden, h * scale * scale);
}

/** `InternVLVisionModel` (InternViT: CLS token, layer scales, optional q/k norms and RMSNorms) and `InternVLMultiModalProjector`. */
function internvlParts(m: ModelBuilder, model: number, vision: ConfigReader, config: ConfigReader, textHidden: number): void {
  const b = m.b;
  b.defineClass('InternVLVisionModel', ['InternVLVisionPreTrainedModel', 'PreTrainedModel', 'Module']);
  b.defineClass('InternVLVisionLayer', ['GradientCheckpointingLayer', 'Module']);
  b.defineClass('Dropout', ['_DropoutNd', 'Module']);
  b.defineClass('Conv2d', ['_ConvNd', 'Module']);
  const h = vision.int('hidden_size');
  const inter = vision.int('intermediate_size');
  const [ih, iw] = pair(vision, 'image_size');
  const [ph, pw] = pair(vision, 'patch_size');
  const tower = m.module(model, 'vision_tower', 'InternVLVisionModel');
  const own: [string, number[]][] = [['cls_token', [1, 1, h]]];
  if (vision.bool('use_mask_token', false)) own.push(['mask_token', [1, 1, h]]);
  if (vision.bool('use_absolute_position_embeddings', true)) own.push(['position_embeddings', [1, Math.floor(ih / ph) * Math.floor(iw / pw) + 1, h]]);
  const embeddings = m.module(tower, 'embeddings', 'InternVLVisionEmbeddings', own);
  const patches = m.module(embeddings, 'patch_embeddings', 'InternVLVisionPatchEmbeddings');
  m.module(patches, 'projection', 'Conv2d', [['weight', [h, vision.int('num_channels'), ph, pw]], ['bias', [h]]]);
  m.module(embeddings, 'dropout', 'Dropout');
  const layers = m.module(m.module(tower, 'encoder', 'InternVLVisionEncoder'), 'layer', 'ModuleList');
  const hiddenAct = vision.str('hidden_act', 'gelu');
  const qkvBias = vision.bool('attention_bias', false);
  const qkNorm = vision.bool('use_qk_norm', false);
  const dropout = vision.get('projection_dropout');
  const rms = vision.str('norm_type', 'layer_norm') === 'rms_norm';
  const layerNorm = (parent: number, name: string): number => (rms ? m.norm(parent, name, 'InternVLVisionRMSNorm', h) : m.layerNorm(parent, name, h));
  for (let i = 0; i < vision.int('num_hidden_layers'); i++) {
    const layer = m.module(layers, String(i), 'InternVLVisionLayer', [['lambda_1', [h]], ['lambda_2', [h]]]);
    const attn = m.module(layer, 'attention', 'InternVLVisionAttention');
    for (const p of ['q_proj', 'k_proj', 'v_proj']) m.linear(attn, p, h, h, qkvBias);
    m.linear(attn, 'projection_layer', h, h, true);
    m.module(attn, 'projection_dropout', typeof dropout === 'number' && dropout > 0 ? 'Dropout' : 'Identity');
    for (const n of ['q_norm', 'k_norm']) {
      if (qkNorm) m.norm(attn, n, 'InternVLVisionRMSNorm', h);
      else m.module(attn, n, 'Identity');
    }
    const mlp = m.module(layer, 'mlp', 'InternVLVisionMLP');
    act(m, mlp, 'activation_fn', hiddenAct);
    m.linear(mlp, 'fc1', inter, h, true);
    m.linear(mlp, 'fc2', h, inter, true);
    layerNorm(layer, 'layernorm_before');
    layerNorm(layer, 'layernorm_after');
    m.module(layer, 'dropout', 'Dropout');
  }
  if (vision.bool('use_mean_pooling', true)) m.module(tower, 'layernorm', 'Identity');
  else m.layerNorm(tower, 'layernorm', h);
  const ratio = config.get('downsample_ratio');
  // `int(1 / downsample_ratio) ** 2` patches are shuffled into one.
  const shuffled = h * Math.trunc(1 / (typeof ratio === 'number' && ratio > 0 ? ratio : 0.5)) ** 2;
  const projector = m.module(model, 'multi_modal_projector', 'InternVLMultiModalProjector');
  m.layerNorm(projector, 'layer_norm', shuffled);
  m.linear(projector, 'linear_1', textHidden, shuffled, true);
  act(m, projector, 'act', config.str('projector_hidden_act', 'gelu'));
  m.linear(projector, 'linear_2', textHidden, textHidden, true);
}

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

/** `Qwen2_5_VLTextModel`: the Qwen2 decoder (q/k/v biases) under the Qwen2.5-VL class names. */
const qwen25VlText = qwenVlText({
  modelType: 'qwen2_5_vl_text',
  cls: 'Qwen2_5_VLForConditionalGeneration',
  model: 'Qwen2_5_VLTextModel',
  pretrained: 'Qwen2_5_VLPreTrainedModel',
  layer: 'Qwen2_5_VLDecoderLayer',
  attention: 'Qwen2_5_VLAttention',
  mlp: 'Qwen2MLP',
  norm: 'Qwen2_5_VLRMSNorm',
  rotary: 'Qwen2_5_VLRotaryEmbedding',
  defaults: {
    vocab_size: 152064, hidden_size: 8192, intermediate_size: 29568, num_hidden_layers: 80, num_attention_heads: 64,
    num_key_value_heads: 8, hidden_act: 'silu', tie_word_embeddings: false,
  },
  decoder: 'qwen2',
});

/** `Qwen2VLTextModel`: the Qwen2 decoder under the Qwen2-VL class names. */
const qwen2VlText = qwenVlText({
  modelType: 'qwen2_vl_text',
  cls: 'Qwen2VLForConditionalGeneration',
  model: 'Qwen2VLTextModel',
  pretrained: 'Qwen2VLPreTrainedModel',
  layer: 'Qwen2VLDecoderLayer',
  attention: 'Qwen2VLAttention',
  mlp: 'Qwen2MLP',
  norm: 'Qwen2VLRMSNorm',
  rotary: 'Qwen2VLRotaryEmbedding',
  defaults: {
    vocab_size: 152064, hidden_size: 8192, intermediate_size: 29568, num_hidden_layers: 80, num_attention_heads: 64,
    num_key_value_heads: 8, hidden_act: 'silu', tie_word_embeddings: false,
  },
  decoder: 'qwen2',
});

/** `Qwen3VLTextModel`: the Qwen3 decoder (per-head q/k norms) under the Qwen3-VL class names. */
const qwen3VlText = qwenVlText({
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
const qwen3VlMoeText: ArchitectureDescriptor = {
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
function plainRope(decoder: 'qwen2' | 'qwen3' | 'qwen3_moe'): (text: Record<string, unknown>) => Record<string, unknown> {
  return (text) => {
    const rope = (text['rope_parameters'] ?? text['rope_scaling']) as Record<string, unknown> | null | undefined;
    const plain = rope && (rope['rope_type'] === 'mrope' || rope['type'] === 'mrope') ? { ...rope, rope_type: 'default', type: 'default' } : rope;
    return { ...text, model_type: decoder, ...(plain ? { rope_parameters: plain, rope_scaling: plain } : {}) };
  };
}

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
  stored: 'llava',
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
  stored: 'llava',
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
  textOnly: plainRope('qwen2'),
  visionFallback: {},
  projectorBias: false,
  // Qwen2_5_VLConfig: tie_word_embeddings (default false), else the text config's (pre-v5 saves).
  tied: (config, text) => flag(config['tie_word_embeddings']) || (flag(text['tie_word_embeddings']) ?? false),
  stored: 'qwen2-vl',
  parts: (m, model, vision) => qwen25VlParts(m, model, vision),
};

/** `Qwen2VLForConditionalGeneration` (Qwen2-VL 2B / 7B / 72B). */
export const qwen2VlModel: VisionLanguageModel = {
  modelType: 'qwen2_vl',
  cls: 'Qwen2VLForConditionalGeneration',
  model: 'Qwen2VLModel',
  pretrained: 'Qwen2VLPreTrainedModel',
  textType: 'qwen2_vl_text',
  textFallback: {},
  textModel: qwen2VlText,
  flatText: true,
  textOnly: plainRope('qwen2'),
  visionFallback: {},
  projectorBias: false,
  // Qwen2VLConfig: tie_word_embeddings (default false), else the text config's (pre-v5 saves).
  tied: (config, text) => flag(config['tie_word_embeddings']) || (flag(text['tie_word_embeddings']) ?? false),
  stored: 'qwen2-vl',
  parts: (m, model, vision) => qwen2VlParts(m, model, vision),
};

/** `Qwen3VLForConditionalGeneration` (Qwen3-VL 2B / 4B / 8B / 32B, dense). */
export const qwen3VlModel: VisionLanguageModel = {
  modelType: 'qwen3_vl',
  cls: 'Qwen3VLForConditionalGeneration',
  model: 'Qwen3VLModel',
  pretrained: 'Qwen3VLPreTrainedModel',
  textType: 'qwen3_vl_text',
  textFallback: {},
  textModel: qwen3VlText,
  // Text only, no deepstack features are added (they exist only for image tokens) and M-RoPE is plain RoPE.
  textOnly: plainRope('qwen3'),
  visionFallback: {},
  projectorBias: false,
  // Qwen3VLConfig: tie_word_embeddings (default false); a text_config value is not read.
  tied: (config) => flag(config['tie_word_embeddings']) ?? false,
  stored: 'as-built',
  parts: (m, model, vision) => qwen3VlParts(m, model, vision),
};

/** `Qwen3VLMoeForConditionalGeneration` (Qwen3-VL-30B-A3B, Qwen3-VL-235B-A22B). */
export const qwen3VlMoeModel: VisionLanguageModel = {
  modelType: 'qwen3_vl_moe',
  cls: 'Qwen3VLMoeForConditionalGeneration',
  model: 'Qwen3VLMoeModel',
  pretrained: 'Qwen3VLMoePreTrainedModel',
  textType: 'qwen3_vl_moe_text',
  textFallback: {},
  textModel: qwen3VlMoeText,
  // Text only, as Qwen3-VL: Qwen3-MoE's decoder with plain RoPE; its router always renormalizes the top-k weights.
  textOnly: (text) => ({ ...plainRope('qwen3_moe')(text), norm_topk_prob: true }),
  visionFallback: {},
  projectorBias: false,
  // Qwen3VLMoeConfig: tie_word_embeddings (default false); the text config's own default (true) is not read.
  tied: (config) => flag(config['tie_word_embeddings']) ?? false,
  stored: 'as-built',
  parts: (m, model, vision) => qwen3VlParts(m, model, vision, 'Qwen3VLMoe'),
};

/** `Idefics3ForConditionalGeneration` (Idefics3-8B-Llama3): the text model is `model.text_model`. */
export const idefics3Model: VisionLanguageModel = {
  modelType: 'idefics3',
  cls: 'Idefics3ForConditionalGeneration',
  model: 'Idefics3Model',
  pretrained: 'Idefics3PreTrainedModel',
  textType: 'llama',
  // Idefics3Config's fallback: LlamaConfig with rms_norm_eps 1e-5 (and a pad id outside its vocabulary, which transformers cannot build).
  textFallback: { rms_norm_eps: 1e-5 },
  textName: 'text_model',
  visionFallback: {},
  projectorBias: false,
  // Idefics3Config: tie_word_embeddings (default false).
  tied: (config) => flag(config['tie_word_embeddings']) ?? false,
  stored: 'as-built',
  parts: idefics3Parts,
};

/** `InternVLForConditionalGeneration` (InternVL3 / InternVL3.5 `-hf` checkpoints): the text model is `text_config`'s, default `qwen2`. */
export const internvlModel: VisionLanguageModel = {
  modelType: 'internvl',
  cls: 'InternVLForConditionalGeneration',
  model: 'InternVLModel',
  pretrained: 'InternVLPreTrainedModel',
  textType: 'qwen2',
  textFallback: {},
  visionFallback: {},
  projectorBias: true,
  // InternVLConfig: tie_word_embeddings defaults to true; a text_config value is not read.
  tied: (config) => flag(config['tie_word_embeddings']) ?? true,
  stored: 'llava',
  parts: internvlParts,
};

/** Vision-language models by `model_type`. */
export const VISION_LANGUAGE: ReadonlyMap<string, VisionLanguageModel> = new Map([llavaModel, mistral3Model, qwen25VlModel, qwen2VlModel, qwen3VlModel, qwen3VlMoeModel, idefics3Model, internvlModel].map((v) => [v.modelType, v] as const));

/** The vision tower types each Llava-layout model is built with here. */
const TOWERS: Readonly<Record<string, { readonly type: string; readonly also?: readonly string[]; readonly defaults: Readonly<Record<string, unknown>> }>> = {
  llava: { type: 'clip_vision_model', defaults: CLIP_VISION_DEFAULTS },
  mistral3: { type: 'pixtral', defaults: PIXTRAL_DEFAULTS },
  qwen2_5_vl: {
    type: 'qwen2_5_vl_vision',
    defaults: {
      depth: 32, hidden_size: 3584, hidden_act: 'silu', intermediate_size: 3420, num_heads: 16, in_channels: 3, patch_size: 14,
      spatial_merge_size: 2, temporal_patch_size: 2, out_hidden_size: 3584,
    },
  },
  qwen2_vl: {
    type: 'qwen2_vl_vision',
    defaults: {
      depth: 32, embed_dim: 1280, hidden_size: 3584, hidden_act: 'quick_gelu', mlp_ratio: 4, num_heads: 16, in_channels: 3, patch_size: 14,
      spatial_merge_size: 2, temporal_patch_size: 2,
    },
  },
  qwen3_vl: {
    type: 'qwen3_vl_vision',
    // Early Qwen3-VL configs name the vision config "qwen3_vl", which Qwen3VLConfig reads as "qwen3_vl_vision".
    also: ['qwen3_vl'],
    defaults: {
      depth: 27, hidden_size: 1152, hidden_act: 'gelu_pytorch_tanh', intermediate_size: 4304, num_heads: 16, in_channels: 3, patch_size: 16,
      spatial_merge_size: 2, temporal_patch_size: 2, out_hidden_size: 3584, num_position_embeddings: 2304, deepstack_visual_indexes: [8, 16, 24],
    },
  },
  qwen3_vl_moe: {
    type: 'qwen3_vl_moe_vision',
    // Early configs name the vision config "qwen3_vl_moe", which Qwen3VLMoeConfig reads as "qwen3_vl_moe_vision".
    also: ['qwen3_vl_moe'],
    defaults: {
      depth: 27, hidden_size: 1152, hidden_act: 'gelu_pytorch_tanh', intermediate_size: 4304, num_heads: 16, in_channels: 3, patch_size: 16,
      spatial_merge_size: 2, temporal_patch_size: 2, out_hidden_size: 3584, num_position_embeddings: 2304, deepstack_visual_indexes: [8, 16, 24],
    },
  },
  idefics3: {
    type: 'idefics3_vision',
    defaults: {
      hidden_size: 1152, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 16, num_channels: 3, image_size: 224, patch_size: 32,
      hidden_act: 'gelu_pytorch_tanh',
    },
  },
  internvl: {
    type: 'internvl_vision',
    defaults: {
      hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, attention_bias: false, use_qk_norm: false, intermediate_size: 4096,
      hidden_act: 'gelu', projection_dropout: 0, norm_type: 'layer_norm', image_size: [448, 448], patch_size: [14, 14], num_channels: 3,
      use_mask_token: false, use_absolute_position_embeddings: true, use_mean_pooling: true,
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
  if (type !== tower.type && !tower.also?.includes(type)) return { type };
  return { reader: new ConfigReader(raw, tower.defaults, type), type };
}
