import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { openCheckpoint } from '../src/execute/safetensors-reader.js';
import { perplexity } from '../src/execute/calibrate/perplexity.js';
import { forwardRefs, modelWithTokenizer, relativeError, textRefs } from './calibrate-refs.js';

/** Reference name → data-free checkpoint and config.json overrides (as the reference script loads it). */
const CASES: Record<string, { model: string; overrides?: Record<string, unknown> }> = {
  llama: { model: 'llama' },
  qwen3_moe: { model: 'qwen3_moe' },
  qwen3_moe_norm_topk: { model: 'qwen3_moe', overrides: { norm_topk_prob: true } },
  glm4_moe_lite: { model: 'glm4_moe_lite' },
  glm4_moe_lite_grouped: { model: 'glm4_moe_lite', overrides: { n_group: 2, topk_group: 1 } },
  qwen2: { model: 'qwen2' },
  qwen3: { model: 'qwen3' },
  mistral: { model: 'mistral' },
  qwen2_moe: { model: 'qwen2_moe' },
  mixtral: { model: 'mixtral' },
  deepseek_v3: { model: 'deepseek_v3' },
  glm4_moe: { model: 'glm4_moe' },
  olmoe: { model: 'olmoe' },
  granitemoe: { model: 'granitemoe' },
  phimoe: { model: 'phimoe' },
  phimoe_longrope: {
    model: 'phimoe',
    overrides: {
      rope_parameters: {
        rope_type: 'longrope',
        rope_theta: 10000,
        short_factor: Array.from({ length: 32 }, (_, i) => 1 + 0.05 * i),
        long_factor: Array.from({ length: 32 }, (_, i) => 1 + 0.5 * i),
        short_mscale: 1.1,
        long_mscale: 1.3,
        original_max_position_embeddings: 16,
      },
      sliding_window: 8,
    },
  },
  deepseek_v3_yarn: {
    model: 'deepseek_v3',
    overrides: {
      rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 40, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1, original_max_position_embeddings: 8 },
    },
  },
};

/** Writes `values` (float32) into every router's e_score_correction_bias of the checkpoint in `dir`. */
async function patchBias(dir: string, values: readonly number[]): Promise<void> {
  const index = await openCheckpoint(dir);
  for (const entry of index.tensors.values()) {
    if (!entry.name.endsWith('.e_score_correction_bias')) continue;
    expect(entry.dtype).toBe('F32');
    const fh = await open(entry.file, 'r+');
    await fh.write(new Uint8Array(Float32Array.from(values).buffer), 0, entry.byteLength, entry.offset);
    await fh.close();
  }
}

async function openCase(name: string): Promise<ForwardModel> {
  const { model, overrides } = CASES[name]!;
  const dir = await modelWithTokenizer(model);
  if (overrides) {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...overrides }));
  }
  const bias = (await textRefs(name)).e_score_correction_bias;
  if (bias) await patchBias(dir, bias);
  return ForwardModel.open(dir);
}

/** 40 rows of a hidden-128 MLP per slice (7 slices of llama's 256), two or one experts per group. */
const SMALL_GROUPS = 40 * 3 * 128 * 4;

describe('the head split over the vocabulary', () => {
  test('slices of 7 rows give the same logits and the same next-token NLL', async () => {
    const ref = await forwardRefs('llama');
    const model = await openCase('llama');
    const hidden = await model.layers(await model.embed([ref.inputIds]));
    const slice = 7 * model.config.hidden * 4;
    const [logits] = await model.head(hidden, 'logits', undefined, slice);
    expect(relativeError(logits!, ref.logits)).toBeLessThan(1e-5);
    const targets = [ref.inputIds.map((row) => [...row.slice(1), 0])];
    const [whole] = await model.head(hidden, 'nll', targets);
    const [sliced] = await model.head(hidden, 'nll', targets, slice);
    expect(relativeError(sliced!, whole!)).toBeLessThan(1e-5);
    // NLL from the reference logits: logsumexp minus the target's logit.
    const vocab = model.config.vocabSize;
    const expected = Float32Array.from(targets[0]!.flat(), (t, n) => {
      const row = ref.logits.subarray(n * vocab, (n + 1) * vocab);
      const m = Math.max(...row);
      return m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[t]!;
    });
    expect(relativeError(sliced!, expected)).toBeLessThan(1e-5);
  });
});

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
      {
        // The same layers with MLPs and experts split into small graphs (as those too large for one graph run).
        const grouped: Float32Array[] = [];
        const groupedRouted: Record<string, number[]> = {};
        await model.layers(await model.embed([ref.inputIds]), {
          expertGroupBytes: SMALL_GROUPS,
          onLayer: (layer, _b, h, extra) => {
            grouped[layer] = h.data;
            if (extra.routed) groupedRouted[String(layer)] = Array.from(extra.routed.data as Float32Array);
            expect(Object.keys(extra).filter((k) => k.startsWith('moe_'))).toEqual([]);
          },
        });
        for (let i = 0; i < ref.layers.length; i++) expect(relativeError(grouped[i]!, ref.layers[i]!), `grouped layer ${i}`).toBeLessThan(1e-5);
        expect(groupedRouted).toEqual(text.input_ids_routed);
      }
      for (const [seq, expected] of Object.entries(text.perplexity.base!)) {
        const r = await perplexity(model, text.text_ids, Number(seq), 8);
        expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
      }
    });
  }
});
