/**
 * The names a checkpoint stores a tree's modules under. transformers 5
 * renames Llava-layout checkpoints on load (`language_model.model.X` →
 * `model.language_model.X`, `vision_tower.X` → `model.vision_tower.X`,
 * `multi_modal_projector.X` → `model.multi_modal_projector.X`,
 * `language_model.lm_head` → `lm_head`) and `save_pretrained` reverts the
 * renames that applied, so published checkpoints and what llm-compressor
 * writes after `oneshot` keep the stored names; compressed-tensors maps its
 * `ignore` list the same way. A rename applies only where the loaded
 * checkpoint matched it: a tied `lm_head` that was never stored stays
 * `lm_head`, and a checkpoint already in the in-memory layout keeps it.
 * Qwen2-VL and Qwen2.5-VL store `model.X` (their language model) and
 * `visual.X`; Qwen3-VL has no mapping and stores the in-memory names.
 */
import { VISION_LANGUAGE } from './architectures/vision-language.js';

/** In-memory module name → stored module name. */
export type StoredName = (module: string) => string;

const IDENTITY: StoredName = (name) => name;

/** How the checkpoint holding `has`'s tensors names the modules of a `modelType` tree (the tree's declared `model_type`). */
export function storedNames(modelType: string | undefined, has: (tensor: string) => boolean): StoredName {
  const vlm = modelType === undefined ? undefined : VISION_LANGUAGE.get(modelType);
  if (!vlm || vlm.stored === 'as-built') return IDENTITY;
  if (vlm.stored === 'qwen2-vl') {
    // transformers' Qwen2-VL renames (Qwen2.5-VL's too): `model.X` → `model.language_model.X`, `visual.X` → `model.visual.X`.
    if (!has('model.embed_tokens.weight')) return IDENTITY;
    return (name) => name.replace(/^model\.language_model(?=\.|$)/, 'model').replace(/^model\.visual(?=\.|$)/, 'visual');
  }
  const legacy = has('language_model.model.embed_tokens.weight');
  const storedHead = has('language_model.lm_head.weight') || has('language_model.lm_head.weight_packed');
  return (name) => {
    if (legacy && /^model\.language_model(?:\.|$)/.test(name)) return name.replace(/^model\.language_model/, 'language_model.model');
    if (legacy && /^model\.(?:vision_tower|multi_modal_projector)(?:\.|$)/.test(name)) return name.slice('model.'.length);
    if (storedHead && name === 'lm_head') return 'language_model.lm_head';
    return name;
  };
}
