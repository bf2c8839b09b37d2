/**
 * The vision-language models quantc builds as transformers 5 does, by
 * `model_type`: `<P>ForConditionalGeneration → model (<P>Model)` holding the
 * vision tower (and projector, see `vision-towers.ts`) and the text model,
 * with `lm_head` at the root. The Llava layout (`llava`, `mistral3`,
 * `internvl`) names them `vision_tower`, `multi_modal_projector` and
 * `language_model` (the `text_config` model's `…Model`); the Qwen-VL models
 * (`qwen2_5_vl`, `qwen2_vl`, `qwen3_vl`, `qwen3_vl_moe`) `visual` and
 * `language_model`, their own `…TextModel` (see `qwen-vl-text.ts`);
 * `idefics3` `vision_model`, `connector` and `text_model`. Each entry also
 * says how the config class ties the embeddings and how checkpoints name
 * the modules.
 */
import type { ModelBuilder } from './blocks.js';
import { ConfigReader } from './config-reader.js';
import type { ArchitectureDescriptor } from './descriptor.js';
import { plainRope, qwen25VlText, qwen2VlText, qwen3VlMoeText, qwen3VlText } from './qwen-vl-text.js';
import {
  CLIP_VISION_DEFAULTS,
  idefics3Parts,
  internvlParts,
  llavaParts,
  mistral3Parts,
  PIXTRAL_DEFAULTS,
  qwen25VlParts,
  qwen2VlParts,
  qwen3VlParts,
} from './vision-towers.js';

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

const flag = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);

/** `tie_word_embeddings` of the top config (default false), else the text config's (older checkpoints saved it there). */
const tiedTopOrText: VisionLanguageModel['tied'] = (config, text) => flag(config['tie_word_embeddings']) || (flag(text['tie_word_embeddings']) ?? false);

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
  tied: tiedTopOrText,
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
  tied: tiedTopOrText,
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
  tied: tiedTopOrText,
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
