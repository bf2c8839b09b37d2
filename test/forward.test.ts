import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { perplexity } from '../src/execute/calibrate/perplexity.js';
import { forwardRefs, modelWithTokenizer, relativeError, textRefs } from './calibrate-refs.js';

/** Reference name → data-free checkpoint and config.json overrides (as the reference script loads it). */
const CASES: Record<string, { model: string; overrides?: Record<string, unknown> }> = {
  llama: { model: 'llama' },
  qwen3_moe: { model: 'qwen3_moe' },
  qwen3_moe_norm_topk: { model: 'qwen3_moe', overrides: { norm_topk_prob: true } },
};

async function openCase(name: string): Promise<ForwardModel> {
  const { model, overrides } = CASES[name]!;
  const dir = await modelWithTokenizer(model);
  if (overrides) {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...overrides }));
  }
  return ForwardModel.open(dir);
}

describe('forward executor matches transformers 5.17 (fp32)', () => {
  for (const name of Object.keys(CASES)) {
    test(`${name}: every layer output, the logits, routed tokens per expert, perplexity`, async () => {
      const ref = await forwardRefs(name);
      const text = await textRefs(name);
      const model = await openCase(name);
      const layers: Float32Array[] = [];
      const routed: Record<string, number[]> = {};
      const hidden = await model.layers(await model.embed([ref.inputIds]), {
        onLayer: (layer, _b, h, extra) => {
          layers[layer] = h.data;
          if (extra.routed) routed[String(layer)] = Array.from(extra.routed.data as Float32Array);
        },
      });
      expect(layers).toHaveLength(ref.layers.length);
      for (let i = 0; i < ref.layers.length; i++) expect(relativeError(layers[i]!, ref.layers[i]!), `layer ${i}`).toBeLessThan(1e-5);
      const [logits] = await model.head(hidden, 'logits');
      expect(logits).toHaveLength(ref.logits.length);
      expect(relativeError(logits!, ref.logits)).toBeLessThan(1e-5);
      expect(routed).toEqual(text.input_ids_routed);
      for (const [seq, expected] of Object.entries(text.perplexity.base!)) {
        const r = await perplexity(model, text.text_ids, Number(seq), 8);
        expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
      }
    });
  }
});
