import { describe, expect, it } from 'vitest';
import { expandConfig } from '../../src/model/architectures/index.js';
import { paramsOf } from '../../src/model/module-tree.js';

const TEXT = { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 64 };
const CLIP = { model_type: 'clip_vision_model', hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, image_size: 28, patch_size: 14 };

function lmHead(config: Record<string, unknown>): number {
  const { value } = expandConfig(config);
  const i = value!.tree.names.indexOf('lm_head');
  return paramsOf(value!.tree, i).length;
}

describe('vision-language configs', () => {
  it('refuses a vision tower quantc does not build, with a one-line error', () => {
    const { value, diagnostics } = expandConfig({ model_type: 'llava', text_config: TEXT, vision_config: { ...CLIP, model_type: 'siglip_vision_model' } });
    expect(value).toBeUndefined();
    expect(diagnostics.map((d) => d.code)).toEqual(['unknown-model-type']);
    expect(diagnostics[0]!.message).toMatch(/LlavaForConditionalGeneration.*"siglip_vision_model"/);
  });

  it('refuses the other towers of a vision-language class too, and reads an early Qwen3-VL vision config', () => {
    const refused = expandConfig({ model_type: 'internvl', text_config: TEXT, vision_config: { model_type: 'siglip_vision_model' } });
    expect(refused.diagnostics[0]!.message).toMatch(/InternVLForConditionalGeneration.*"siglip_vision_model"/);
    const early = expandConfig({ model_type: 'qwen3_vl', text_config: TEXT, vision_config: { model_type: 'qwen3_vl', depth: 1, hidden_size: 8, intermediate_size: 16, num_heads: 2, out_hidden_size: 16 } });
    expect(early.diagnostics).toEqual([]);
    expect(early.value!.tree.names).toContain('model.visual.deepstack_merger_list.2.linear_fc2');
  });

  it('refuses a text model without a descriptor', () => {
    const { value, diagnostics } = expandConfig({ model_type: 'llava', text_config: { ...TEXT, model_type: 'gemma2' }, vision_config: CLIP });
    expect(value).toBeUndefined();
    expect(diagnostics[0]!.message).toMatch(/text_config model_type "gemma2"/);
  });

  it('ties the embeddings as each config class decides', () => {
    // LlavaConfig: false by default, a true text_config value carries over; Mistral3Config: true by default.
    expect(lmHead({ model_type: 'llava', text_config: TEXT, vision_config: CLIP })).toBe(1);
    expect(lmHead({ model_type: 'llava', text_config: { ...TEXT, tie_word_embeddings: true }, vision_config: CLIP })).toBe(0);
    expect(lmHead({ model_type: 'mistral3', text_config: TEXT, vision_config: { hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 } })).toBe(0);
    expect(lmHead({ model_type: 'mistral3', tie_word_embeddings: false, text_config: TEXT, vision_config: { hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 } })).toBe(1);
    // Qwen2VLConfig takes a true text_config value (pre-v5 saves); Qwen3VLConfig, Idefics3Config and InternVLConfig read the top level only.
    const qwen2vl = { depth: 1, embed_dim: 8, hidden_size: 16, num_heads: 2 };
    expect(lmHead({ model_type: 'qwen2_vl', text_config: { ...TEXT, tie_word_embeddings: true }, vision_config: qwen2vl })).toBe(0);
    expect(lmHead({ model_type: 'qwen2_vl', text_config: TEXT, vision_config: qwen2vl })).toBe(1);
    const qwen3vl = { depth: 1, hidden_size: 8, intermediate_size: 16, num_heads: 2, out_hidden_size: 16, deepstack_visual_indexes: [] };
    expect(lmHead({ model_type: 'qwen3_vl', text_config: { ...TEXT, tie_word_embeddings: true }, vision_config: qwen3vl })).toBe(1);
    expect(lmHead({ model_type: 'qwen3_vl', tie_word_embeddings: true, text_config: TEXT, vision_config: qwen3vl })).toBe(0);
    const idefics3 = { hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, image_size: 28, patch_size: 14 };
    expect(lmHead({ model_type: 'idefics3', text_config: { ...TEXT, tie_word_embeddings: true }, vision_config: idefics3 })).toBe(1);
    const internvl = { hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, image_size: 28, patch_size: 14 };
    expect(lmHead({ model_type: 'internvl', text_config: TEXT, vision_config: internvl })).toBe(0);
    expect(lmHead({ model_type: 'internvl', tie_word_embeddings: false, text_config: { ...TEXT, tie_word_embeddings: true }, vision_config: internvl })).toBe(1);
  });
});
