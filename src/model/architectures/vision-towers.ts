/**
 * The vision towers and projectors of the vision-language models, each
 * added under `model` with transformers 5.17's module and class names:
 * CLIP and the Llava projector, Pixtral and Mistral 3's projector, the
 * Qwen2-VL, Qwen2.5-VL and Qwen3-VL(-MoE) `visual` towers, Idefics3's vision
 * model and connector, InternViT and InternVL's projector.
 */
import { ACTIVATIONS, type ModelBuilder } from './blocks.js';
import type { ConfigReader } from './config-reader.js';

/** `CLIPVisionConfig` defaults. */
export const CLIP_VISION_DEFAULTS: Readonly<Record<string, unknown>> = {
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3,
  image_size: 224, patch_size: 32, hidden_act: 'quick_gelu',
};
/** `PixtralVisionConfig` defaults. */
export const PIXTRAL_DEFAULTS: Readonly<Record<string, unknown>> = {
  hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, num_channels: 3,
  image_size: 1024, patch_size: 16, hidden_act: 'gelu',
};

/** The activation module for `hidden_act` (SiLU when unknown). */
function act(m: ModelBuilder, parent: number, name: string, hiddenAct: string): number {
  return m.module(parent, name, ACTIVATIONS[hiddenAct] ?? 'SiLUActivation');
}

/** An int that a config may also give as `[h, w]` (its first entry, as the square sizes here assume). */
function side(cfg: ConfigReader, key: string): number {
  const list = cfg.intList(key);
  return list && list.length > 0 ? list[0]! : cfg.int(key);
}

/** A patch convolution `Conv2d(num_channels, h, patch_size)`, with or without a bias. */
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

/**
 * `count` layers of a CLIP-style vision encoder under `layers` (CLIP's,
 * SigLIP's): self-attention with biased k/v/q/out projections, two
 * LayerNorms and a two-Linear MLP, in transformers' registration order,
 * with the architecture's class names.
 */
function encoderLayers(m: ModelBuilder, layers: number, count: number, h: number, inter: number, hiddenAct: string, names: { readonly layer: string; readonly attention: string; readonly mlp: string }): void {
  for (let i = 0; i < count; i++) {
    const layer = m.module(layers, String(i), names.layer);
    const attn = m.module(layer, 'self_attn', names.attention);
    for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) m.linear(attn, p, h, h, true);
    m.layerNorm(layer, 'layer_norm1', h);
    const mlp = m.module(layer, 'mlp', names.mlp);
    act(m, mlp, 'activation_fn', hiddenAct);
    m.linear(mlp, 'fc1', inter, h, true);
    m.linear(mlp, 'fc2', h, inter, true);
    m.layerNorm(layer, 'layer_norm2', h);
  }
}

/** `CLIPVisionModel` (patch and position embeddings, pre/post LayerNorms, encoder) and `LlavaMultiModalProjector`. */
export function llavaParts(m: ModelBuilder, model: number, vision: ConfigReader, config: ConfigReader, textHidden: number): void {
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
  encoderLayers(m, layers, vision.int('num_hidden_layers'), h, inter, vision.str('hidden_act', 'quick_gelu'), { layer: 'CLIPEncoderLayer', attention: 'CLIPAttention', mlp: 'CLIPMLP' });
  m.layerNorm(tower, 'post_layernorm', h);
  const bias = config.bool('multimodal_projector_bias', true);
  const projector = m.module(model, 'multi_modal_projector', 'LlavaMultiModalProjector');
  m.linear(projector, 'linear_1', textHidden, h * featureLayers(config), bias);
  act(m, projector, 'act', config.str('projector_hidden_act', 'gelu'));
  m.linear(projector, 'linear_2', textHidden, textHidden, bias);
}

/** `PixtralVisionModel` (patch convolution, RMSNorm, transformer) and `Mistral3MultiModalProjector` (RMSNorm, patch merger, two Linears). */
export function mistral3Parts(m: ModelBuilder, model: number, vision: ConfigReader, config: ConfigReader, textHidden: number): void {
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
export function qwen25VlParts(m: ModelBuilder, model: number, vision: ConfigReader): void {
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
export function qwen2VlParts(m: ModelBuilder, model: number, vision: ConfigReader): void {
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
export function qwen3VlParts(m: ModelBuilder, model: number, vision: ConfigReader, prefix = 'Qwen3VL'): void {
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
export function idefics3Parts(m: ModelBuilder, model: number, vision: ConfigReader, config: ConfigReader, textHidden: number): void {
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
  encoderLayers(m, layers, vision.int('num_hidden_layers'), h, inter, vision.str('hidden_act', 'gelu_pytorch_tanh'), { layer: 'Idefics3EncoderLayer', attention: 'Idefics3VisionAttention', mlp: 'Idefics3VisionMLP' });
  m.layerNorm(tower, 'post_layernorm', h);
  const scale = config.int('scale_factor');
  const connector = m.module(model, 'connector', 'Idefics3Connector');
  m.linear(m.module(connector, 'modality_projection', 'Idefics3SimpleMLP'), 'proj', textHidden, h * scale * scale);
}

/** `InternVLVisionModel` (InternViT: CLS token, layer scales, optional q/k norms and RMSNorms) and `InternVLMultiModalProjector`. */
export function internvlParts(m: ModelBuilder, model: number, vision: ConfigReader, config: ConfigReader, textHidden: number): void {
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
