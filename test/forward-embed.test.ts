import { expect, test } from 'vitest';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { stackBatches } from '../src/execute/forward/layer-loop.js';
import { forwardRefs, modelWithTokenizer } from './calibrate-refs.js';

test('embeddings of a model computing in its table dtype come as the stored 16-bit rows, the same values as the float32 rows', async () => {
  for (const name of ['llama', 'qwen3_moe']) {
    const dir = await modelWithTokenizer(name);
    const ids = (await forwardRefs(name)).inputIds;
    const wide = await ForwardModel.open(dir);
    const [plain] = await wide.embed([ids]);
    expect(plain!.stored).toBeUndefined();
    const low = await ForwardModel.open(dir);
    expect(low.usePrecision('bf16').runs).toBe('bfloat16');
    const [stored] = await low.embed([ids]);
    expect(stored!.stored?.dtype).toBe('bfloat16');
    expect(stored!.stored!.data.length).toBe(plain!.data.length);
    expect(stored!.data).toEqual(plain!.data);
    // Without 16-bit stacks between graphs the rows come as float32.
    const f32 = await ForwardModel.open(dir);
    f32.usePrecision('bf16');
    f32.compactStacks = false;
    expect((await f32.embed([ids]))[0]!.stored).toBeUndefined();
    await expect(low.embed([[[1, 2, 1_000_000]]])).rejects.toThrow(/token id 1000000 is outside the vocabulary/);
  }
});

test('a stack of batches held as 16-bit elements is those elements, as a stack of their float32 values gives', async () => {
  const dir = await modelWithTokenizer('llama');
  const ids = (await forwardRefs('llama')).inputIds;
  const model = await ForwardModel.open(dir);
  model.usePrecision('bf16');
  const stored = await model.embed([ids, [ids[0]!.slice(0, 5)]]);
  expect(stored.every((b) => b.stored)).toBe(true);
  const plain = stored.map((b) => ({ data: Float32Array.from(b.data), batch: b.batch, seq: b.seq }));
  const direct = stackBatches(stored, model.config.hidden, 'bfloat16');
  expect(direct.dtype).toBe('bfloat16');
  expect(direct).toEqual(stackBatches(plain, model.config.hidden, 'bfloat16'));
});

test('the first graph of several layers looks the stored embedding rows up itself: the outputs of the rows fed in', async () => {
  const { GraphRuntime } = await import('../src/execute/runtime.js');
  const { vi } = await import('vitest');
  for (const name of ['llama', 'qwen3_moe']) {
    const dir = await modelWithTokenizer(name);
    const ids = (await forwardRefs(name)).inputIds;
    const run = async (fedRows: boolean): Promise<{ out: Float32Array[]; keys: string[] }> => {
      const model = await ForwardModel.open(dir);
      model.usePrecision('bf16');
      model.graphWeightBytes = 1 << 30;
      model.layerOutputs = true;
      const embedded = await model.embed([ids, [ids[0]!.slice(0, 7)]]);
      expect(embedded.every((b) => b.tokens !== undefined)).toBe(true);
      // Rows fed in: the same stored rows without their token ids.
      const batches = fedRows ? embedded.map((b) => ({ data: b.data, batch: b.batch, seq: b.seq, stored: b.stored })) : embedded;
      const keys: string[] = [];
      const original = GraphRuntime.prototype.run;
      const spy = vi.spyOn(GraphRuntime.prototype, 'run').mockImplementation(function (this: InstanceType<typeof GraphRuntime>, ...args: Parameters<typeof original>) {
        keys.push(args[0]);
        return original.apply(this, args);
      });
      const out: Float32Array[] = [];
      try {
        await model.layers(batches, { onLayer: (layer, i, h) => (out[layer * 2 + i] = Float32Array.from(h.data)) });
      } finally {
        spy.mockRestore();
      }
      return { out, keys };
    };
    const looked = await run(false);
    const fed = await run(true);
    expect(looked.keys[0]).toMatch(/^layers_0_\d+_ids$/);
    expect(fed.keys[0]).toMatch(/^layers_0_\d+_stored$/);
    expect(looked.out).toEqual(fed.out);
  }
});
