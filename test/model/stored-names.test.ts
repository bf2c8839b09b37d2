import { describe, expect, it } from 'vitest';
import { storedNames } from '../../src/model/stored-names.js';

const has = (names: string[]) => (t: string): boolean => names.includes(t);

describe('storedNames: the names a checkpoint stores a tree’s modules under', () => {
  it('reverts transformers’ llava renames for a checkpoint in the published layout', () => {
    const s = storedNames('llava', has(['language_model.model.embed_tokens.weight', 'language_model.lm_head.weight']));
    expect(s('model.language_model.layers.0.self_attn.q_proj')).toBe('language_model.model.layers.0.self_attn.q_proj');
    expect(s('model.language_model.embed_tokens')).toBe('language_model.model.embed_tokens');
    expect(s('model.vision_tower.encoder.layers.0.mlp.fc1')).toBe('vision_tower.encoder.layers.0.mlp.fc1');
    expect(s('model.multi_modal_projector.linear_1')).toBe('multi_modal_projector.linear_1');
    expect(s('lm_head')).toBe('language_model.lm_head');
  });

  it('keeps a head that was never stored (tied) as lm_head, as compressed-tensors does', () => {
    const s = storedNames('mistral3', has(['language_model.model.embed_tokens.weight']));
    expect(s('lm_head')).toBe('lm_head');
    expect(s('model.multi_modal_projector.patch_merger.merging_layer')).toBe('multi_modal_projector.patch_merger.merging_layer');
  });

  it('leaves a checkpoint already in the in-memory layout, and other model types, as they are', () => {
    const native = storedNames('llava', has(['model.language_model.embed_tokens.weight', 'lm_head.weight']));
    expect(native('model.language_model.layers.0.mlp.up_proj')).toBe('model.language_model.layers.0.mlp.up_proj');
    expect(native('lm_head')).toBe('lm_head');
    const llama4 = storedNames('llama4', has(['language_model.model.embed_tokens.weight']));
    expect(llama4('language_model.model.layers.0.self_attn.q_proj')).toBe('language_model.model.layers.0.self_attn.q_proj');
    expect(storedNames(undefined, () => true)('model.layers.0.mlp.up_proj')).toBe('model.layers.0.mlp.up_proj');
  });

  it('follows each class’s conversion mapping: Qwen2-VL’s, the llava one for InternVL, none for Qwen3-VL and Idefics3', () => {
    const qwen2vl = storedNames('qwen2_vl', has(['model.embed_tokens.weight', 'lm_head.weight']));
    expect(qwen2vl('model.language_model.layers.0.mlp.up_proj')).toBe('model.layers.0.mlp.up_proj');
    expect(qwen2vl('model.visual.blocks.0.mlp.fc1')).toBe('visual.blocks.0.mlp.fc1');
    expect(qwen2vl('lm_head')).toBe('lm_head');
    const internvl = storedNames('internvl', has(['language_model.model.embed_tokens.weight']));
    expect(internvl('model.language_model.layers.0.self_attn.q_proj')).toBe('language_model.model.layers.0.self_attn.q_proj');
    expect(internvl('model.vision_tower.encoder.layer.0.attention.q_proj')).toBe('vision_tower.encoder.layer.0.attention.q_proj');
    expect(internvl('lm_head')).toBe('lm_head');
    for (const type of ['qwen3_vl', 'idefics3']) {
      const s = storedNames(type, () => true);
      expect(s('model.language_model.layers.0.mlp.up_proj')).toBe('model.language_model.layers.0.mlp.up_proj');
      expect(s('model.connector.modality_projection.proj')).toBe('model.connector.modality_projection.proj');
    }
  });
});
