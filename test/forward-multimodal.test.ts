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

/**
 * Llava-layout checkpoints (LlavaForConditionalGeneration,
 * Mistral3ForConditionalGeneration) run text-only through their language
 * model, stored as `language_model.model.…` (Mistral 3 tied: no head of its
 * own), and Qwen2_5_VLForConditionalGeneration through its Qwen2 decoder
 * (text only, M-RoPE is plain RoPE): perplexity as transformers 5.17 computes it in float32 on token ids
 * only, for the base checkpoint and for llm-compressor's W4A16 output.
 */
describe('vision-language checkpoints run text-only through their language model', () => {
  for (const model of ['llava', 'mistral3', 'qwen2_5_vl']) {
    for (const variant of ['base', 'W4A16']) {
      test(`${model} ${variant}`, async () => {
        const refs = JSON.parse(await readFile(join(CALIBRATION, 'multimodal.json'), 'utf8')) as Refs;
        const forward = await ForwardModel.open(await unpackModel(join(DATAFREE, model, variant)));
        // Qwen2.5-VL stores its language model as a causal LM's (`model.…`, `lm_head`).
        expect(forward.weights.names).toEqual(model === 'qwen2_5_vl' ? { model: 'model', head: 'lm_head' } : { model: 'language_model.model', head: 'language_model.lm_head' });
        expect(forward.config.tieEmbeddings).toBe(model === 'mistral3');
        for (const [seq, expected] of Object.entries(refs.perplexity[model]![variant]!)) {
          const r = await perplexity(forward, refs.text_ids, Number(seq), 8);
          expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
        }
      });
    }
  }
});
