import { describe, expect, test } from 'vitest';
import { calibrate } from '../src/execute/calibrate/calibrate.js';
import { windows } from '../src/execute/calibrate/perplexity.js';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { forwardRefs, modelWithTokenizer, relativeError, textRefs } from './calibrate-refs.js';

/** Several consecutive layers in one graph, and the other CUDA defaults, give what one graph per layer gives. */
describe('layers grouped into one graph', () => {
  for (const name of ['llama', 'qwen2', 'qwen3', 'mistral']) {
    test(`${name}: every layer output and every observed statistic`, async () => {
      const ref = await forwardRefs(name);
      const model = await ForwardModel.open(await modelWithTokenizer(name));
      expect(model.layerRanges()).toEqual(Array.from({ length: model.config.layers }, (_, l) => [l, l + 1]));
      const perLayer = 4 * model.config.hidden * (2 * model.config.heads * model.config.headDim + 2 * model.config.kvHeads * model.config.headDim + 3 * model.config.intermediate);
      model.graphWeightBytes = 2 * perLayer;
      const ranges = model.layerRanges();
      expect(ranges.some(([a, b]) => b - a === 2)).toBe(true);
      expect(ranges.flatMap(([a, b]) => Array.from({ length: b - a }, (_, i) => a + i))).toEqual(Array.from({ length: model.config.layers }, (_, l) => l));
      const layers: Float32Array[] = [];
      await model.layers(await model.embed([ref.inputIds]), { onLayer: (layer, _b, h) => (layers[layer] = h.data) });
      for (let i = 0; i < ref.layers.length; i++) expect(relativeError(layers[i]!, ref.layers[i]!), `layer ${i}`).toBeLessThan(1e-5);

      const text = await textRefs(name);
      const batches = windows(text.text_ids, 16, 2);
      const grouped = await calibrate(model, batches);
      // As on CUDA: weights widened and transposed at every run, only the last layer's states copied back.
      model.foldConstants = false;
      model.layerOutputs = false;
      const unfolded = await calibrate(model, batches);
      model.graphWeightBytes = 0;
      model.foldConstants = true;
      model.layerOutputs = true;
      const single = await calibrate(model, batches);
      expect(grouped.inputs.size).toBe(single.inputs.size);
      for (const run of [grouped, unfolded]) {
        for (const [module, s] of single.inputs) expect(run.inputs.get(module), module).toEqual(s);
        for (const [module, s] of single.lastBatch) expect(run.lastBatch.get(module), module).toEqual(s);
      }
    });
  }
});

describe('layers grouped into one graph, in bf16', () => {
  for (const name of ['llama', 'qwen3']) {
    test(`${name}: the states between graphs travel as bf16 elements, with the same values and statistics`, async () => {
      const model = await ForwardModel.open(await modelWithTokenizer(name));
      model.usePrecision('bf16');
      const perLayer = 4 * model.config.hidden * (2 * model.config.heads * model.config.headDim + 2 * model.config.kvHeads * model.config.headDim + 3 * model.config.intermediate);
      model.graphWeightBytes = 2 * perLayer;
      model.layerOutputs = false;
      const batches = windows((await textRefs(name)).text_ids, 16, 2);
      const run = async (): Promise<{ out: Float32Array[]; stored: boolean[] }> => {
        const hidden = await model.layers(await model.embed(batches));
        return { out: hidden.map((h) => Float32Array.from(h.data)), stored: hidden.map((h) => h.stored?.dtype === 'bfloat16') };
      };
      const compact = await run();
      const calibrated = await calibrate(model, batches);
      // States held as bf16 elements go into the next graph as they are: the same as their float32 values.
      const once = await model.layers(await model.embed(batches));
      const twice = await model.layers(once);
      const viaFloat = await model.layers(once.map((h) => ({ data: Float32Array.from(h.data), batch: h.batch, seq: h.seq })));
      twice.forEach((h, i) => expect(h.data).toEqual(viaFloat[i]!.data));
      model.compactStacks = false;
      const plain = await run();
      const plainStats = await calibrate(model, batches);
      expect(compact.stored.every(Boolean)).toBe(true);
      expect(plain.stored.some(Boolean)).toBe(false);
      compact.out.forEach((h, i) => expect(h).toEqual(plain.out[i]));
      for (const [module, s] of plainStats.inputs) expect(calibrated.inputs.get(module), module).toEqual(s);
      for (const [module, s] of plainStats.lastBatch) expect(calibrated.lastBatch.get(module), module).toEqual(s);
    });
  }
});
