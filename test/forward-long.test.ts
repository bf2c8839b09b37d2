import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { layerBuilderFor } from '../src/execute/forward/architectures.js';
import { readDecoderConfig, UnsupportedModelError } from '../src/execute/forward/decoder-config.js';
import { indexerTypes } from '../src/execute/forward/dsa-layer.js';
import { main } from '../src/cli/main.js';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { qwen3NextLayerType } from '../src/execute/forward/qwen3-next-layer.js';
import { perplexity } from '../src/execute/calibrate/perplexity.js';
import { CALIBRATION, forwardRefs, modelWithTokenizer, relativeError, textRefs } from './calibrate-refs.js';
import { memoryIo } from './memory-io.js';

/**
 * Architectures whose attention depends on the sequence length, against
 * transformers 5.17 (fp32, eager) on sequences longer than one DeltaNet chunk
 * (64 tokens) and than the DSA indexer's index_topk (16): references made by
 * make_long_sequence_refs.py from the data-free fixtures.
 */
const MODELS = ['qwen3_next', 'glm_moe_dsa'];

/** Config dumps of transformers 5.17's config classes (dump_trees.py). */
const TREES = join(CALIBRATION, '..', 'trees');

/** The reference's extras: each layer's relative change of the hidden state, transformers' own spread under half-ulp weight noise. */
interface LongRefs {
  readonly layer_change: number[];
  readonly noise_floor: Record<string, number>;
}

describe('forward executor matches transformers 5.17 on long sequences (fp32)', () => {
  for (const name of MODELS) {
    test(`${name}: every layer output, the logits, routed tokens per expert, perplexity`, async () => {
      const ref = await forwardRefs(name);
      const text = await textRefs(name);
      const long = JSON.parse(await readFile(join(CALIBRATION, `${name}.json`), 'utf8')) as LongRefs;
      // Every layer moves the hidden state: none could be skipped unnoticed.
      for (const change of long.layer_change) expect(change).toBeGreaterThan(0.1);
      // Layer outputs within 1e-5, or 3× transformers' own spread where its arithmetic amplifies rounding (the chunked delta rule).
      const tolerance = (key: string): number => Math.max(1e-5, 3 * (long.noise_floor[key] ?? 0));
      const model = await ForwardModel.open(await modelWithTokenizer(name));
      const layers: Float32Array[] = [];
      const routed: Record<string, number[]> = {};
      const hidden = await model.layers(await model.embed([ref.inputIds]), {
        onLayer: (layer, _b, h, extra) => {
          layers[layer] = h.data;
          if (extra.routed) routed[String(layer)] = Array.from(extra.routed.data as Float32Array);
        },
      });
      expect(layers).toHaveLength(ref.layers.length);
      for (let i = 0; i < ref.layers.length; i++) expect(relativeError(layers[i]!, ref.layers[i]!), `layer ${i}`).toBeLessThan(tolerance(`layer.${i}`));
      const [logits] = await model.head(hidden, 'logits');
      expect(relativeError(logits!, ref.logits)).toBeLessThan(tolerance('logits'));
      expect(routed).toEqual(text.input_ids_routed);
      for (const [seq, expected] of Object.entries(text.perplexity.base!)) {
        const r = await perplexity(model, text.text_ids, Number(seq), 8);
        expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
      }
    });

    test(`${name}: llm-compressor's W4A16 checkpoint, decompressed in bf16, has transformers' perplexity; quantc eval prints it`, async () => {
      const text = await textRefs(name);
      const dir = await modelWithTokenizer(name, 'W4A16');
      const model = await ForwardModel.open(dir);
      for (const [seq, expected] of Object.entries(text.perplexity.W4A16!)) {
        const r = await perplexity(model, text.text_ids, Number(seq), 8);
        expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
      }
      const io = memoryIo(dir);
      expect(await main(['eval', '--model', dir, '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '150', '--format', 'json'], io), io.err.join('')).toBe(0);
      const parsed = JSON.parse(io.out.join('')) as { perplexity: number };
      expect(Math.abs(parsed.perplexity - text.perplexity.W4A16!['150']!) / parsed.perplexity).toBeLessThan(1e-5);
    });
  }
});

describe('glm_moe_dsa indexer layouts', () => {
  test('layers that reuse another layer\'s key selection are refused when the model is opened', () => {
    const raw = { model_type: 'glm_moe_dsa', num_hidden_layers: 4 };
    expect(() => layerBuilderFor({ ...raw, indexer_types: ['full', 'full', 'full', 'full'] })).not.toThrow();
    expect(() => layerBuilderFor(raw)).not.toThrow();
    expect(indexerTypes({ ...raw, index_topk_freq: 2 })).toEqual(['full', 'full', 'shared', 'full']);
    expect(indexerTypes({ ...raw, index_topk_pattern: 'FSSF' })).toEqual(['full', 'shared', 'shared', 'full']);
    expect(() => layerBuilderFor({ ...raw, index_topk_pattern: 'FSSF' })).toThrow(UnsupportedModelError);
    expect(() => layerBuilderFor({ ...raw, index_topk_pattern: 'FSSF' })).toThrow(/layers 1, 2 reuse/);
  });
});

describe('full-size configs as transformers 5.17 writes them', () => {
  test('qwen3_next: partial rotary, layer pattern, legacy layer names', async () => {
    const raw = JSON.parse(await readFile(join(TREES, 'qwen3_next', 'default.config.json'), 'utf8')) as Record<string, unknown>;
    expect(() => layerBuilderFor(raw)).not.toThrow();
    const cfg = readDecoderConfig(raw);
    expect({ dim: cfg.rope.dim, headDim: cfg.headDim, zeroCentred: cfg.zeroCentredNorms }).toEqual({ dim: 64, headDim: 256, zeroCentred: true });
    expect(readDecoderConfig({ ...raw, rope_parameters: undefined, partial_rotary_factor: undefined, rope_theta: 10000 }).rope.dim).toBe(64);
    const layers = Number(raw.num_hidden_layers);
    expect(Array.from({ length: layers }, (_, i) => qwen3NextLayerType(raw, i))).toEqual(raw.layer_types);
    expect([0, 1, 2, 3, 4, 5].map((i) => qwen3NextLayerType({ full_attention_interval: 3 }, i))).toEqual(['linear_attention', 'linear_attention', 'full_attention', 'linear_attention', 'linear_attention', 'full_attention']);
    expect(qwen3NextLayerType({ layer_types: ['mamba', 'attention'] }, 1)).toBe('full_attention');
    expect(() => qwen3NextLayerType({ layer_types: ['sliding_attention'] }, 0)).toThrow(UnsupportedModelError);
  });

  test('glm_moe_dsa: MLA rope on qk_rope_head_dim, every indexer full', async () => {
    const raw = JSON.parse(await readFile(join(TREES, 'glm_moe_dsa', 'default.config.json'), 'utf8')) as Record<string, unknown>;
    expect(() => layerBuilderFor(raw)).not.toThrow();
    expect(readDecoderConfig(raw).rope.dim).toBe(64);
    const shared = JSON.parse(await readFile(join(TREES, 'glm_moe_dsa', 'shared-indexer.config.json'), 'utf8')) as Record<string, unknown>;
    expect(() => layerBuilderFor(shared)).toThrow(UnsupportedModelError);
  });
});
