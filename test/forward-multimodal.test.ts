import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { perplexity } from '../src/execute/calibrate/perplexity.js';
import { CALIBRATION } from './calibrate-refs.js';
import { DATAFREE, unpackModel } from './execute/fixtures.js';

interface Refs {
  readonly text_ids: number[];
  readonly perplexity: Record<string, Record<string, Record<string, number>>>;
}

/** Where each checkpoint stores its language model: as the conversion mapping of its class writes it. */
const NAMES: Record<string, { model: string; head: string }> = {
  llava: { model: 'language_model.model', head: 'language_model.lm_head' },
  mistral3: { model: 'language_model.model', head: 'language_model.lm_head' },
  internvl: { model: 'language_model.model', head: 'language_model.lm_head' },
  // Qwen2-VL and Qwen2.5-VL store their language model as a causal LM's.
  qwen2_5_vl: { model: 'model', head: 'lm_head' },
  qwen2_vl: { model: 'model', head: 'lm_head' },
  // No mapping: the in-memory names.
  qwen3_vl: { model: 'model.language_model', head: 'lm_head' },
  qwen3_vl_moe: { model: 'model.language_model', head: 'lm_head' },
  idefics3: { model: 'model.text_model', head: 'lm_head' },
};

/**
 * Llava-layout checkpoints (LlavaForConditionalGeneration,
 * Mistral3ForConditionalGeneration, InternVLForConditionalGeneration) run
 * text-only through their language model, stored as `language_model.model.…`
 * (Mistral 3 and InternVL tied: no head of their own);
 * Qwen2_5_VLForConditionalGeneration and Qwen2VLForConditionalGeneration
 * through their Qwen2 decoder and Qwen3VLForConditionalGeneration (tied)
 * through its Qwen3 decoder, Qwen3VLMoeForConditionalGeneration through its
 * Qwen3-MoE decoder (text only, M-RoPE is plain RoPE and deepstack adds
 * nothing); Idefics3ForConditionalGeneration through its llama
 * `model.text_model`: perplexity as transformers 5.17 computes it in float32
 * on token ids only, for the base checkpoint and for llm-compressor's W4A16
 * output.
 */
describe('vision-language checkpoints run text-only through their language model', () => {
  for (const model of ['llava', 'mistral3', 'qwen2_5_vl', 'qwen2_vl', 'qwen3_vl', 'qwen3_vl_moe', 'idefics3', 'internvl']) {
    for (const variant of ['base', 'W4A16']) {
      test(`${model} ${variant}`, async () => {
        const refs = JSON.parse(await readFile(join(CALIBRATION, 'multimodal.json'), 'utf8')) as Refs;
        const forward = await ForwardModel.open(await unpackModel(join(DATAFREE, model, variant)));
        expect(forward.weights.names).toEqual(NAMES[model]);
        expect(forward.config.tieEmbeddings).toBe(['mistral3', 'qwen3_vl', 'internvl'].includes(model));
        for (const [seq, expected] of Object.entries(refs.perplexity[model]![variant]!)) {
          const r = await perplexity(forward, refs.text_ids, Number(seq), 8);
          expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
        }
      });
    }
  }
});
