import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { perplexity, windows } from '../src/execute/calibrate/perplexity.js';
import { ForwardModel, type HiddenBatch } from '../src/execute/forward/executor.js';
import { servedModel } from '../src/execute/simulate/simulating-weights.js';
import { CALIBRATION, forwardRefs, modelWithTokenizer, relativeError, textRefs } from './calibrate-refs.js';
import { parseSafetensors, serializeSafetensors } from './execute/fixtures.js';
import { memoryIo } from './memory-io.js';
import { MOE_VARIANTS, simulateModel, simulateRefs, simulateTensors, VARIANTS } from './simulate-refs.js';

const text = await textRefs('llama');
const TEXT = join(CALIBRATION, 'text.txt');

/**
 * Relative perplexity tolerance. Static scales, NVFP4 and MX agree to 1.1e-6
 * (measured), as the weights-only perplexities do. Dynamic per-token FP8 and
 * INT8 scales put values of the first layer's q/k/v input exactly on a
 * rounding midpoint (the bf16 embeddings through RMSNorm make x / scale an
 * exact tie: 45 of 38912 values in the FP8_DYNAMIC reference at seq 16), so a
 * 1-ulp difference in RMSNorm (onnxruntime's ReduceMean and 1/sqrt against
 * torch's mean and rsqrt) decides which way the tie rounds, and each flip
 * moves an activation by one quantization step. Measured: at most 9.2e-5
 * (FP8_DYNAMIC seq 16), 1.9e-5 (W8A8), 1.6e-5 (FP8_DYNAMIC_KV), 7.6e-5
 * (FP8_DYNAMIC_HEAD); the
 * tolerance is twice the largest. Per-layer outputs and logits for the fixed
 * input ids (no ties there) agree to 4e-7 for every variant.
 */
const PPL_TOLERANCE: Record<string, number> = { MXFP4: 1e-5, MXFP8: 1e-5, W8A8: 2e-4, FP8_DYNAMIC: 2e-4, FP8_DYNAMIC_KV: 2e-4, FP8_DYNAMIC_HEAD: 2e-4, FP8: 1e-5, INT8_STATIC: 1e-5, INT8_STATIC_ASYM: 1e-5, NVFP4: 1e-5 };
const inputIds = (await forwardRefs('llama')).inputIds;

describe("--simulate activations matches compressed-tensors' fake-quantized forward (transformers 5.17, float32)", () => {
  for (const variant of VARIANTS) {
    test(variant, async () => {
      const { model, weights } = servedModel(await ForwardModel.open(await simulateModel(variant)));
      const refs = await simulateRefs(variant);
      const tensors = await simulateTensors(variant);
      const layers: Float32Array[] = [];
      const hidden = await model.layers(await model.embed([inputIds]), { onLayer: (layer, _b, h: HiddenBatch) => (layers[layer] = h.data.slice()) });
      const [logits] = await model.head(hidden, 'logits');
      const errors = { layers: layers.map((l, i) => relativeError(l, tensors.layers[i]!)), logits: relativeError(logits!, tensors.logits) };
      const ppl: Record<string, number> = {};
      for (const seq of ['16', '32']) ppl[seq] = (await perplexity(model, text.text_ids, Number(seq), 4)).perplexity;
      // Seven Linears in each of 2 layers, and lm_head where it is quantized.
      expect(weights!.summary().inputs.size).toBe(variant === 'FP8_DYNAMIC_HEAD' ? 15 : 14);
      expect(weights!.summary().kvCache.size).toBe(variant === 'FP8_DYNAMIC_KV' ? 2 : 0);
      for (const e of errors.layers) expect(e).toBeLessThan(1e-4);
      expect(errors.logits).toBeLessThan(1e-4);
      for (const seq of ['16', '32']) expect(Math.abs(ppl[seq]! / refs.perplexity.activations[seq]! - 1), `seq ${seq}`).toBeLessThan(PPL_TOLERANCE[variant]);
      // The default (weights only) is compressed-tensors' forward with activation quantization off.
      const plain = await ForwardModel.open(await simulateModel(variant));
      expect(Math.abs((await perplexity(plain, text.text_ids, 32, 4)).perplexity / refs.perplexity.weights!['32']! - 1)).toBeLessThan(1e-5);
    });
  }
});

describe('--simulate activations on MLPs split across graphs (70B-class layers)', () => {
  /** 40 rows of the tiny llama's 256-row MLP per slice (a slice keeps whole groups of 16 or 32). */
  const SMALL = 40 * 3 * 128 * 4;
  for (const variant of ['FP8', 'INT8_STATIC_ASYM', 'NVFP4', 'MXFP4'] as const) {
    test(`${variant}: per-tensor and group scales quantize each slice of the down projection's input`, async () => {
      const { model } = servedModel(await ForwardModel.open(await simulateModel(variant)));
      const refs = await simulateRefs(variant);
      const r = await perplexity(model, text.text_ids, 32, 4, { expertGroupBytes: SMALL });
      expect(Math.abs(r.perplexity / refs.perplexity.activations['32']! - 1)).toBeLessThan(PPL_TOLERANCE[variant]!);
    });
  }

  test('per-token scales of a split input are a diagnostic', async () => {
    const { model } = servedModel(await ForwardModel.open(await simulateModel('W8A8')));
    await expect(perplexity(model, text.text_ids, 32, 4, { expertGroupBytes: SMALL })).rejects.toThrow(
      'model.layers.0.mlp.down_proj: its input is split across graphs (an MLP larger than one graph) and its INT8 dynamic per-token scales span the whole row, which cannot be simulated yet',
    );
  });
});

describe('quantc eval --simulate', () => {
  test('the default measures weights only and says so; --simulate activations measures the served model', async () => {
    const dir = await simulateModel('FP8_DYNAMIC_KV');
    const refs = await simulateRefs('FP8_DYNAMIC_KV');
    const plain = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '-q'], plain)).toBe(0);
    const out = plain.out.join('');
    expect(Number(/^perplexity: (\S+)\n/.exec(out)![1])).toBeCloseTo(refs.perplexity.weights!['32']!, 3);
    expect(out).toContain('\n  quantized    weights only (activations and kv cache unquantized; --simulate activations for the served model)\n');

    const served = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--simulate', 'activations', '-q'], served)).toBe(0);
    const text = served.out.join('');
    expect(Math.abs(Number(/^perplexity: (\S+)\n/.exec(text)![1]) / refs.perplexity.activations['32']! - 1)).toBeLessThan(2e-4);
    expect(text).toContain('\n  quantized    weights, activations (14 Linear inputs: FP8 dynamic per-token), kv cache (2 attentions: FP8 static per-tensor)\n');

    const json = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--simulate', 'activations', '--format', 'json'], json)).toBe(0);
    const parsed = JSON.parse(json.out.join('')) as { simulate: string; simulated: unknown; perplexity: number };
    expect(parsed.simulate).toBe('activations');
    expect(parsed.simulated).toEqual({ inputs: { 'FP8 dynamic per-token': 14 }, kvCache: { 'FP8 static per-tensor': 2 } });
    expect(Math.abs(parsed.perplexity / refs.perplexity.activations['32']! - 1)).toBeLessThan(2e-4);
    const weightsJson = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--format', 'json'], weightsJson)).toBe(0);
    expect((JSON.parse(weightsJson.out.join('')) as { simulate: string }).simulate).toBe('weights');
  });

  test('static INT8 asymmetric and NVFP4 say what they quantized', async () => {
    for (const [variant, line] of [
      ['INT8_STATIC_ASYM', 'weights, activations (14 Linear inputs: INT8 static per-tensor asymmetric)'],
      ['NVFP4', 'weights, activations (14 Linear inputs: FP4 dynamic local per-group 16, FP8 scales under a global scale)'],
    ] as const) {
      const io = memoryIo(await simulateModel(variant));
      expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--simulate', 'activations', '-q'], io)).toBe(0);
      expect(io.out.join('')).toContain(`\n  quantized    ${line}\n`);
    }
  });

  test('a model without quantized activations runs as weights only and says so', async () => {
    const io = memoryIo(await modelWithTokenizer('llama', 'W4A16'));
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--simulate', 'activations', '-q'], io)).toBe(0);
    expect(Number(/^perplexity: (\S+)\n/.exec(io.out.join(''))![1])).toBeCloseTo(text.perplexity.W4A16!['32']!, 3);
    expect(io.out.join('')).toContain('\n  quantized    weights, no activations (none quantized by quantization_config)\n');
    const base = memoryIo(dir0);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--simulate', 'activations', '-q'], base)).toBe(0);
    expect(base.out.join('')).toContain('\n  quantized    nothing (the model has no quantization_config)\n');
  });

  test('activations it cannot simulate are a diagnostic (exit 1), not a wrong figure', async () => {
    const dir = await modelWithTokenizer('llama', 'W8A8');
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { quantization_config: { config_groups: Record<string, Record<string, Record<string, unknown>>> } };
    Object.assign(config.quantization_config.config_groups.group_0!.input_activations!, { dynamic: false, strategy: 'channel' });
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const io = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--simulate', 'activations', '-q'], io)).toBe(1);
    expect(io.err.join('')).toBe('error eval-simulate-unsupported: model.layers.0.self_attn.q_proj: cannot simulate static channel activation scales\n\n1 error, 0 warnings\n');
    // The default measures the weights, whatever the activations say.
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '-q'], memoryIo(dir))).toBe(0);
    const bad = memoryIo(dir0);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--simulate', 'kv'], bad)).toBe(2);
    expect(bad.err.join('')).toMatch(/^quantc: eval: --simulate must be one of/);
  });
});

const dir0 = await modelWithTokenizer('llama');

/** Relative L2 drift of each layer's output, computed here from the two models' captured outputs. */
async function driftOf(modelDir: string, baselineDir: string, seq: number): Promise<number[]> {
  const run = async (dir: string): Promise<Float32Array[][]> => {
    const m = await ForwardModel.open(dir);
    const out: Float32Array[][] = [];
    const batches = windows(text.text_ids, seq, 1);
    await m.layers(await m.embed(batches), { onLayer: (layer, b, h) => ((out[layer] ??= [])[b] = h.data.slice()) });
    return out;
  };
  const [a, b] = [await run(modelDir), await run(baselineDir)];
  return a.map((batches, layer) => {
    let diff = 0;
    let base = 0;
    batches.forEach((x, i) => x.forEach((v, j) => ((diff += (v - b[layer]![i]![j]!) ** 2), (base += b[layer]![i]![j]! ** 2))));
    return Math.sqrt(diff / base);
  });
}

describe('quantc eval --baseline', () => {
  test('both perplexities, their ratio and each layer drift, in text and JSON', async () => {
    const model = await modelWithTokenizer('llama', 'W4A16');
    const io = memoryIo(model);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--baseline', dir0, '-q'], io)).toBe(0);
    const lines = io.out.join('').split('\n');
    const first = /^perplexity: (\S+) vs (\S+) baseline \(ratio (\S+)\)$/.exec(lines[0]!)!;
    expect(Number(first[1])).toBeCloseTo(text.perplexity.W4A16!['32']!, 3);
    expect(Number(first[2])).toBeCloseTo(text.perplexity.base!['32']!, 3);
    expect(Number(first[3])).toBeCloseTo(text.perplexity.W4A16!['32']! / text.perplexity.base!['32']!, 5);
    expect(lines).toContain(`  baseline     ${Number(first[2]).toFixed(4)} (mean NLL ${Math.log(text.perplexity.base!['32']!).toFixed(6)} nats) of ${dir0}`);
    expect(lines.find((l) => l.startsWith('  layer drift  '))).toMatch(/^ {2}layer drift {2}0: \d\.\d\de-\d, 1: \d\.\d\de-\d \(relative L2 of each layer's output against the baseline's\)$/);

    const json = memoryIo(model);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--baseline', dir0, '--format', 'json'], json)).toBe(0);
    const r = JSON.parse(json.out.join('')) as { perplexity: number; baseline: { perplexity: number; model: string }; ratio: number; layerDrift: number[] };
    expect(Math.abs(r.perplexity / text.perplexity.W4A16!['32']! - 1)).toBeLessThan(1e-5);
    expect(Math.abs(r.baseline.perplexity / text.perplexity.base!['32']! - 1)).toBeLessThan(1e-5);
    expect(r.ratio).toBeCloseTo(r.perplexity / r.baseline.perplexity, 12);
    const expected = await driftOf(model, dir0, 32);
    expect(r.layerDrift).toHaveLength(2);
    r.layerDrift.forEach((d, i) => expect(Math.abs(d / expected[i]! - 1)).toBeLessThan(1e-9));
    expect(r.layerDrift[0]).toBeGreaterThan(1e-4);
  });

  test('a model against itself: ratio 1, no drift', async () => {
    const io = memoryIo(dir0);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '16', '--baseline', '.', '--format', 'json'], io)).toBe(0);
    const r = JSON.parse(io.out.join('')) as { ratio: number; layerDrift: number[] };
    expect(r.ratio).toBe(1);
    expect(r.layerDrift).toEqual([0, 0]);
  });

  test('--simulate activations applies to both models', async () => {
    const io = memoryIo(dir0);
    const model = await simulateModel('FP8_DYNAMIC');
    expect(await main(['eval', '--model', model, '--data', TEXT, '--seq-len', '32', '--baseline', '.', '--simulate', 'activations', '--format', 'json'], io)).toBe(0);
    const r = JSON.parse(io.out.join('')) as { perplexity: number; baseline: { perplexity: number } };
    expect(Math.abs(r.perplexity / (await simulateRefs('FP8_DYNAMIC')).perplexity.activations['32']! - 1)).toBeLessThan(2e-4);
    expect(Math.abs(r.baseline.perplexity / text.perplexity.base!['32']! - 1)).toBeLessThan(1e-5);
  });

  test('models that do not share architecture, vocabulary or tokenizer: exit 2, one line', async () => {
    const edit = async (patch: (config: Record<string, unknown>) => void, tokenizer?: string): Promise<string> => {
      const dir = await modelWithTokenizer('llama');
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      patch(config);
      await writeFile(join(dir, 'config.json'), JSON.stringify(config));
      if (tokenizer) await copyFile(tokenizer, join(dir, 'tokenizer.json'));
      return dir;
    };
    const cases: [string, RegExp][] = [
      [await edit((c) => (c.model_type = 'qwen3')), /^quantc: eval: \S+ is a qwen3 model and \. a llama model; --baseline needs the same architecture\.\n$/],
      [await edit((c) => (c.num_hidden_layers = 3)), /^quantc: eval: \S+ has 3 layers of 128 and \. 2 layers of 128; --baseline needs the same architecture\.\n$/],
      [await edit((c) => (c.vocab_size = 256)), /^quantc: eval: \S+ has a vocabulary of 256 tokens and \. 128; the perplexities would not be comparable\.\n$/],
      [await edit(() => undefined, join(CALIBRATION, 'tokenizers', 'bytelevel', 'tokenizer.json')), /^quantc: eval: \S+ and \. tokenize differently \(their tokenizer\.json differ in model, added_tokens, pre_tokenizer\); the perplexities would not be comparable\.\n$/],
      [join(dir0, 'missing'), /^quantc: eval: --baseline \S+ has no config\.json\.\n$/],
    ];
    for (const [baseline, message] of cases) {
      const io = memoryIo(dir0);
      expect(await main(['eval', '--model', '.', '--data', TEXT, '--baseline', baseline], io)).toBe(2);
      expect(io.err.join('')).toMatch(message);
    }
  });
});

/** Rewrites a model folder's config.json's quantization_config with `patch`, and adds `tensors` (float32 scalars) to its checkpoint. */
async function patchModel(dir: string, patch: (q: Record<string, unknown>) => void, tensors: Record<string, number> = {}): Promise<void> {
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { quantization_config: Record<string, unknown> };
  patch(config.quantization_config);
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  const all = parseSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))));
  for (const [name, v] of Object.entries(tensors)) all.set(name, { dtype: 'F32', shape: [1], bytes: new Uint8Array(Float32Array.of(v).buffer) });
  await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(all));
}

const moeIds = (await forwardRefs('qwen3_moe')).inputIds;
const moeText = await textRefs('qwen3_moe');

describe('--simulate activations on MoE and MLA models', () => {
  for (const variant of MOE_VARIANTS) {
    test(`qwen3_moe ${variant}: every routed expert quantizes its tokens with its own arguments and scales`, async () => {
      const { model, weights } = servedModel(await ForwardModel.open(await simulateModel(variant, 'qwen3_moe')));
      const refs = await simulateRefs(variant, 'qwen3_moe');
      const tensors = await simulateTensors(variant, 'qwen3_moe');
      const layers: Float32Array[] = [];
      const hidden = await model.layers(await model.embed([moeIds]), { onLayer: (layer, _b, h: HiddenBatch) => (layers[layer] = h.data.slice()) });
      const [logits] = await model.head(hidden, 'logits');
      const ppl: Record<string, number> = {};
      for (const seq of ['16', '32']) ppl[seq] = (await perplexity(model, moeText.text_ids, Number(seq), 4)).perplexity;
      // q/k/v/o and three projections of each of 4 experts, in 2 layers.
      expect(weights!.summary().inputs.size).toBe(2 * (4 + 3 * 4));
      layers.forEach((l, i) => expect(relativeError(l, tensors.layers[i]!)).toBeLessThan(1e-4));
      expect(relativeError(logits!, tensors.logits)).toBeLessThan(1e-4);
      // Measured: 4.4e-8 (FP8_TOKEN), 2.8e-8 (NVFP4_INPUTS); no rounding ties in these inputs.
      for (const seq of ['16', '32']) expect(Math.abs(ppl[seq]! / refs.perplexity.activations[seq]! - 1), `seq ${seq}`).toBeLessThan(1e-5);
    });
  }

  test('qwen3_next: the kv cache of its full-attention layers (not of its linear-attention ones)', async () => {
    const dir = await modelWithTokenizer('qwen3_next', 'W4A16');
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { layer_types: string[] };
    const full = config.layer_types.flatMap((t, i) => (t === 'full_attention' ? [i] : []));
    expect(full.length).toBeGreaterThan(0);
    const scales: Record<string, number> = {};
    for (const l of full) Object.assign(scales, { [`model.layers.${l}.self_attn.k_scale`]: 0.5 / 448, [`model.layers.${l}.self_attn.v_scale`]: 0.5 / 448 });
    await patchModel(dir, (q) => (q.kv_cache_scheme = { num_bits: 8, type: 'float', strategy: 'tensor', dynamic: false, symmetric: true }), scales);
    const [plain, served] = [memoryIo(dir), memoryIo(dir)];
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--format', 'json'], plain)).toBe(0);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--format', 'json', '--simulate', 'activations'], served)).toBe(0);
    const [a, b] = [plain, served].map((io) => JSON.parse(io.out.join('')) as { perplexity: number; simulated?: unknown });
    expect(b!.simulated).toEqual({ inputs: {}, kvCache: { 'FP8 static per-tensor': full.length } });
    expect(Math.abs(b!.perplexity / a!.perplexity - 1)).toBeGreaterThan(1e-6);
  });

  test('activation groups that do not divide a Linear input: a diagnostic', async () => {
    const dir = await modelWithTokenizer('llama', 'W8A8');
    await patchModel(dir, (q) => Object.values(q.config_groups as Record<string, Record<string, unknown>>).forEach((g) => (g.input_activations = { num_bits: 8, type: 'float', strategy: 'group', group_size: 48, dynamic: true, symmetric: true })));
    const io = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--simulate', 'activations', '-q'], io)).toBe(1);
    expect(io.err.join('')).toMatch(/^error eval-simulate-unsupported: model\.layers\.0\.self_attn\.q_proj: its 128 input columns are not a multiple of the activation group size 48\n/);
  });

  test('per-batch scales of an expert input depend on its routed tokens: a diagnostic', async () => {
    const dir = await modelWithTokenizer('qwen3_moe', 'W4A16');
    const int8 = { num_bits: 8, type: 'int', strategy: 'tensor', dynamic: true, symmetric: true };
    await patchModel(dir, (q) => Object.values(q.config_groups as Record<string, Record<string, unknown>>).forEach((g) => (g.input_activations = int8)));
    const io = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--simulate', 'activations', '-q'], io)).toBe(1);
    expect(io.err.join('')).toMatch(/^error eval-simulate-unsupported: model\.layers\.0\.mlp\.experts\.0\.gate_proj: an expert's INT8 dynamic per-tensor input scale depends on the tokens routed to it, which cannot be simulated yet\n/);
  });

  test("an MLA kv cache quantizes what transformers caches (the normed latent and the rotated shared key)", async () => {
    const dir = await modelWithTokenizer('glm4_moe_lite', 'W4A16');
    const kv = { num_bits: 8, type: 'float', strategy: 'tensor', dynamic: false, symmetric: true };
    // Scales coarse enough to move the perplexity: 448 FP8 steps over ±0.5 and ±2.
    const scales: Record<string, number> = {};
    for (const l of [0, 1]) Object.assign(scales, { [`model.layers.${l}.self_attn.k_scale`]: 0.5 / 448, [`model.layers.${l}.self_attn.v_scale`]: 2 / 448 });
    await patchModel(dir, (q) => (q.kv_cache_scheme = kv), scales);
    const plain = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--format', 'json'], plain)).toBe(0);
    const served = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--format', 'json', '--simulate', 'activations'], served)).toBe(0);
    const [a, b] = [plain, served].map((io) => JSON.parse(io.out.join('')) as { perplexity: number; simulated?: unknown });
    expect(Math.abs(a!.perplexity / (await textRefs('glm4_moe_lite')).perplexity.W4A16!['32']! - 1)).toBeLessThan(1e-5);
    expect(b!.simulated).toEqual({ inputs: {}, kvCache: { 'FP8 static per-tensor': 2 } });
    expect(Math.abs(b!.perplexity / a!.perplexity - 1)).toBeGreaterThan(1e-6);
  });

});
