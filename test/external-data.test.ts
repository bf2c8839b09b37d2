import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../src/execute/runtime.js';
import { forwardRefs, modelWithTokenizer } from './calibrate-refs.js';

afterEach(() => {
  delete process.env.QUANTC_EXTERNAL_WEIGHTS;
});

test('constants lying in files of the folder are referenced, not copied, and read by onnxruntime from there', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'quantc-ext-'));
  const other = await mkdtemp(join(tmpdir(), 'quantc-ext-other-'));
  const values = Float32Array.from({ length: 4096 }, (_, i) => i / 7);
  // Payloads at odd offsets, as tensors lie in a safetensors file.
  const file = new Uint8Array(13 + values.byteLength);
  file.set(new Uint8Array(values.buffer), 13);
  await writeFile(join(dir, 'weights.bin'), file);
  await writeFile(join(other, 'weights.bin'), file);
  const graph = (): GraphBuilder => {
    const g = new GraphBuilder();
    const x = g.input('x', OnnxType.float, [4096]);
    const a = g.constRaw(OnnxType.float, [4096], { file: join(dir, 'weights.bin'), offset: 13, byteLength: values.byteLength });
    const b = g.constRaw(OnnxType.float, [4096], { file: join(other, 'weights.bin'), offset: 13, byteLength: values.byteLength });
    g.output(g.op('Add', [g.op('Add', [x, a]), b]), 'y', OnnxType.float, [4096]);
    return g;
  };
  const g = graph();
  expect(g.fileFolder()).toBeDefined();
  const inline = graph().build('inline');
  const referenced = g.build('external', { externalData: g.fileFolder()! });
  // One payload referenced (its folder), the other copied.
  expect(inline.length - referenced.length).toBeGreaterThan(values.byteLength - 200);
  expect(referenced.length).toBeGreaterThan(values.byteLength);
  const rt = new GraphRuntime('cpu');
  try {
    const x = { type: 'float32' as const, data: new Float32Array(4096).fill(1), dims: [4096] };
    const a = (await rt.run('a', () => inline, { x })).y!.data as Float32Array;
    const b = (await rt.run('b', () => ({ bytes: referenced, externalData: g.fileFolder()! }), { x })).y!.data as Float32Array;
    expect(b).toEqual(a);
    expect(a[7]).toBeCloseTo(1 + 2 * (7 / 7), 5);
  } finally {
    await rt.dispose();
  }
});

test('layer graphs, one layer or several, read the checkpoint from its files: the same outputs as with the weights copied in', async () => {
  const dir = await modelWithTokenizer('llama');
  const ids = (await forwardRefs('llama')).inputIds;
  for (const graphWeightBytes of [0, 1 << 30]) {
    const run = async (): Promise<Float32Array[]> => {
      const model = await ForwardModel.open(dir);
      model.usePrecision('bf16');
      model.graphWeightBytes = graphWeightBytes;
      const out: Float32Array[] = [];
      await model.layers(await model.embed([ids]), { onLayer: (layer, _b, h) => (out[layer] = Float32Array.from(h.data)) });
      expect(model.layerRanges().some(([a, b]) => b - a > 1)).toBe(graphWeightBytes > 0);
      return out;
    };
    delete process.env.QUANTC_EXTERNAL_WEIGHTS;
    const referenced = await run();
    process.env.QUANTC_EXTERNAL_WEIGHTS = '0';
    expect(referenced).toEqual(await run());
  }
});

test('graphs of several layers may grow past the copied-weights bound when they reference the checkpoint, not when its weights are copied or changed', async () => {
  const dir = await modelWithTokenizer('llama');
  const model = await ForwardModel.open(dir);
  const perLayer = model.layerRanges().length; // one layer per graph on the CPU by default
  expect(perLayer).toBe(model.config.layers);
  model.graphWeightBytes = 1; // below one layer: one layer per graph unless referenced
  model.referencedGraphWeightBytes = 1 << 30;
  expect(model.layerRanges()).toEqual([[0, model.config.layers]]);
  process.env.QUANTC_EXTERNAL_WEIGHTS = '0';
  expect(model.layerRanges()).toHaveLength(model.config.layers);
  delete process.env.QUANTC_EXTERNAL_WEIGHTS;
  const { OverlayWeights } = await import('../src/execute/pipeline/overlay-weights.js');
  const q = 'model.layers.0.self_attn.q_proj';
  const changed = model.withWeights(new OverlayWeights(model.weights, { linears: new Map([[q, await model.weights.linear(q)]]), vectors: new Map() }, []));
  expect(changed.layerRanges()).toHaveLength(model.config.layers);
  // An explicit 0 still means one layer per graph.
  model.graphWeightBytes = 0;
  expect(model.layerRanges()).toHaveLength(model.config.layers);
});
