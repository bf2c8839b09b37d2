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
  });
});
