import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { perplexity } from '../src/execute/calibrate/perplexity.js';
import { toFloat32 } from '../src/execute/dtypes.js';
import type { DenseMatrix } from '../src/execute/forward/dequantize.js';
import { OverlayWeights } from '../src/execute/pipeline/overlay-weights.js';
import type { FusedExpertsParam } from '../src/execute/types.js';
import { readWeight, resolveWeight } from '../src/execute/weight-source.js';
import { CALIBRATION, forwardRefs, modelWithTokenizer, relativeError, textRefs } from './calibrate-refs.js';
import { DATAFREE, parseSafetensors, serializeSafetensors, unpackModel, type RefTensor } from './execute/fixtures.js';

/** Bound on one expert group's weights that puts every expert of these models in a graph of its own. */
const ONE_EXPERT = 4 * (3 * 64 * 32 + 2 * 32 + 64);

describe('forward executor matches transformers 5.17 (fp32) on gpt-oss and Llama 4', () => {
  for (const name of ['gpt_oss', 'llama4_text']) {
    test(`${name}: every layer output, the logits, routed tokens per expert, perplexity`, async () => {
      const ref = await forwardRefs(name);
      const text = await textRefs(name);
      const model = await ForwardModel.open(await modelWithTokenizer(name));
      for (const expertGroupBytes of [undefined, ONE_EXPERT]) {
        const layers: Float32Array[] = [];
        const routed: Record<string, number[]> = {};
        const hidden = await model.layers(await model.embed([ref.inputIds]), {
          expertGroupBytes,
          onLayer: (layer, _b, h, extra) => {
            layers[layer] = h.data;
            if (extra.routed) routed[String(layer)] = Array.from(extra.routed.data as Float32Array);
            expect(Object.keys(extra).filter((k) => k.startsWith('moe_'))).toEqual([]);
          },
        });
        expect(layers).toHaveLength(ref.layers.length);
        for (let i = 0; i < ref.layers.length; i++) expect(relativeError(layers[i]!, ref.layers[i]!), `layer ${i} (groups of ${expertGroupBytes})`).toBeLessThan(1e-5);
        expect(routed).toEqual(text.input_ids_routed);
        const [logits] = await model.head(hidden, 'logits');
        expect(relativeError(logits!, ref.logits)).toBeLessThan(1e-5);
      }
      for (const [seq, expected] of Object.entries(text.perplexity.base!)) {
        const r = await perplexity(model, text.text_ids, Number(seq), 8);
        expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
      }
    });
  }
});

describe('a Llama4ForConditionalGeneration checkpoint runs text-only through its language model', () => {
  test('the text model stored under language_model. with a vision tower beside it gives the same perplexity', async () => {
    const text = await textRefs('llama4_text');
    const dir = await modelWithTokenizer('llama4_text');
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))));
    const stored = new Map<string, RefTensor>([...tensors].map(([name, t]) => [`language_model.${name}`, t]));
    stored.set('multi_modal_projector.linear_1.weight', { dtype: 'BF16', shape: [64, 16], bytes: new Uint8Array(64 * 16 * 2) });
    await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(stored));
    const { dtype, ...textConfig } = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const config = { model_type: 'llama4', architectures: ['Llama4ForConditionalGeneration'], dtype, text_config: textConfig, vision_config: { hidden_size: 16 } };
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const model = await ForwardModel.open(dir);
    expect(model.weights.names).toEqual({ model: 'language_model.model', head: 'language_model.lm_head' });
    expect(model.config.dtype).toBe('bfloat16');
    for (const [seq, expected] of Object.entries(text.perplexity.base!)) {
      const r = await perplexity(model, text.text_ids, Number(seq), 8);
      expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
    }
  });
});

/** gpt_oss_mxfp4: the gpt_oss fixture with its experts MXFP4-packed, as gpt-oss is published (transformers decodes them on load). */
const DEQUANTIZED: [string, string][] = [
  ['gpt_oss', 'base'],
  ['gpt_oss', 'W4A16'],
  ['gpt_oss_mxfp4', 'base'],
  ['llama4', 'base'],
  ['llama4', 'W4A16'],
  // Per-expert NVFP4 checkpoints: transformers 5.17 drops the experts' global scales when it loads them into its fused
  // experts, so the reference decompresses each module with compressed-tensors' own compressor (make_calibration_refs.py).
  ['qwen3_moe', 'NVFP4A16'],
  ['glm4_moe_lite', 'NVFP4A16'],
];

describe('perplexity of the fused-expert data-free fixtures and of llm-compressor output, as transformers computes them from the decompressed weights', () => {
  for (const [model, variant] of DEQUANTIZED) {
    {
      test(`${model} ${variant}`, async () => {
        const refs = JSON.parse(await readFile(join(CALIBRATION, 'datafree_dequantized.json'), 'utf8')) as { text_ids: number[]; perplexity: Record<string, Record<string, Record<string, number>>> };
        const forward = await ForwardModel.open(await unpackModel(join(DATAFREE, model, variant)));
        for (const [seq, expected] of Object.entries(refs.perplexity[model]![variant]!)) {
          const r = await perplexity(forward, refs.text_ids, Number(seq), 8);
          expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
        }
      });
    }
  }
});

describe('a gpt-oss layer rebuilt from per-expert replacements (a quantized layer propagated)', () => {
  test('keeps the fused biases: unchanged replacements give the same layer output', async () => {
    const ref = await forwardRefs('gpt_oss');
    const model = await ForwardModel.open(await modelWithTokenizer('gpt_oss'));
    const hidden = await model.embed([ref.inputIds]);
    const experts = 'model.layers.0.mlp.experts';
    const fused: FusedExpertsParam[] = [
      { tensor: `${experts}.gate_up_proj`, expertsModule: experts, transposed: true, projections: ['gate_proj', 'up_proj'], bias: `${experts}.gate_up_proj_bias` },
      { tensor: `${experts}.down_proj`, expertsModule: experts, transposed: true, projections: ['down_proj'], bias: `${experts}.down_proj_bias` },
    ];
    const linears = new Map<string, DenseMatrix>();
    for (const proj of ['gate_proj', 'up_proj', 'down_proj']) {
      const src = resolveWeight(model.weights.index, `${experts}.0.${proj}`, fused)!;
      linears.set(`${experts}.0.${proj}`, { data: toFloat32(await readWeight(src), src.dtype as "BF16"), rows: src.shape[0], cols: src.shape[1] });
    }
    const overlay = new OverlayWeights(model.weights, { linears, vectors: new Map() }, fused);
    expect(overlay.has(`${experts}.gate_up_proj`)).toBe(false);
    const base = await model.runLayer(0, hidden, {});
    const replaced = await model.runLayer(0, hidden, {}, undefined, overlay);
    expect(relativeError(replaced.hidden[0]!.data, base.hidden[0]!.data)).toBeLessThan(1e-6);
    expect(relativeError(base.hidden[0]!.data, ref.layers[0]!)).toBeLessThan(1e-5);
  });
});
