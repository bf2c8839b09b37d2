import { expect, test } from 'vitest';
import { calibrate } from '../src/execute/calibrate/calibrate.js';
import { layerBuilderFor } from '../src/execute/forward/architectures.js';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { forwardRefs, modelWithTokenizer } from './calibrate-refs.js';

// MoE layers whose experts stay in the layer graph share graphs like dense layers (softmax-routed,
// sigmoid-routed MLA/GLM, GraniteMoE, PhiMoE; on CUDA up to 16 GiB when their bf16 experts are read
// from the checkpoint's files): the same statistics, expert coverage included, as one graph per layer.
test.each(['qwen3_moe', 'qwen2_moe', 'mixtral', 'olmoe', 'deepseek_v3', 'glm4_moe', 'glm4_moe_lite', 'granitemoe', 'phimoe', 'qwen3_next', 'glm_moe_dsa', 'gpt_oss', 'llama4_text'])('%s: layers sharing graphs observe what one graph per layer observes', async (arch) => {
  const dir = await modelWithTokenizer(arch);
  const ids = (await forwardRefs('llama')).inputIds.flat();
  const batches = [[ids.slice(0, 12)], [ids.slice(4, 20)]];
  const run = async (graphWeightBytes: number): Promise<Awaited<ReturnType<typeof calibrate>>> => {
    const model = await ForwardModel.open(dir);
    model.usePrecision('bf16');
    model.graphWeightBytes = graphWeightBytes;
    expect(model.layerRanges().length).toBe(graphWeightBytes > 0 ? 1 : model.config.layers);
    return calibrate(model, batches);
  };
  const single = await run(0);
  const shared = await run(1 << 30);
  expect([...shared.inputs.entries()]).toEqual([...single.inputs.entries()]);
  expect([...shared.lastBatch.entries()]).toEqual([...single.lastBatch.entries()]);
  expect(shared.coverage).toEqual(single.coverage);
  expect(single.coverage.layers.length).toBeGreaterThan(0);
  expect([...single.inputs.keys()].some((m) => /experts\.\d+\./.test(m))).toBe(true);
});

test('MoE layers whose experts run as separate groups keep one graph per layer', async () => {
  const model = await ForwardModel.open(await modelWithTokenizer('qwen3_moe'));
  model.graphWeightBytes = 1 << 30;
  expect(model.layerRanges(1)).toHaveLength(model.config.layers);
});

test('experts read as stored may fill a graph up to the referenced-weights bound; copied ones keep the protobuf-bound default', async () => {
  const model = await ForwardModel.open(await modelWithTokenizer('qwen3_moe'));
  model.referencedGraphWeightBytes = 1 << 33;
  expect(model.expertGroupBound(undefined)).toBeUndefined(); // float32
  model.precision = { requested: 'bf16', runs: 'bfloat16', low: { dtype: 'bfloat16', native: false } };
  expect(model.expertGroupBound(undefined)).toBeUndefined(); // emulated: experts as float32 stacks
  model.precision = { requested: 'bf16', runs: 'bfloat16', low: { dtype: 'bfloat16', native: true } };
  expect(model.expertGroupBound(undefined)).toBe(1 << 33);
  expect(model.expertGroupBound(1234)).toBe(1234);
  const { OverlayWeights } = await import('../src/execute/pipeline/overlay-weights.js');
  const q = 'model.layers.0.self_attn.q_proj';
  expect(model.expertGroupBound(undefined, new OverlayWeights(model.weights, { linears: new Map([[q, await model.weights.linear(q)]]), vectors: new Map() }, []))).toBeUndefined();
  process.env.QUANTC_EXTERNAL_WEIGHTS = '0';
  try {
    expect(model.expertGroupBound(undefined)).toBeUndefined();
  } finally {
    delete process.env.QUANTC_EXTERNAL_WEIGHTS;
  }
  const gptOss = await ForwardModel.open(await modelWithTokenizer('gpt_oss'));
  gptOss.referencedGraphWeightBytes = 1 << 33;
  gptOss.precision = model.precision;
  // Its input-major experts come as stored too, gate and up cut out in the graph (moe.ts: storedInputMajorExperts).
  expect(gptOss.expertGroupBound(undefined)).toBe(1 << 33);
});

test('QUANTC_GRAPH_WEIGHT_MB sets the referenced-weights bound on CUDA', async () => {
  const dir = await modelWithTokenizer('qwen3_moe');
  process.env.QUANTC_GRAPH_WEIGHT_MB = '512';
  try {
    expect((await ForwardModel.open(dir, 'cuda')).referencedGraphWeightBytes).toBe(512 * 2 ** 20);
    process.env.QUANTC_GRAPH_WEIGHT_MB = '0';
    expect((await ForwardModel.open(dir, 'cuda')).referencedGraphWeightBytes).toBe(0);
  } finally {
    delete process.env.QUANTC_GRAPH_WEIGHT_MB;
  }
  expect((await ForwardModel.open(dir, 'cuda')).referencedGraphWeightBytes).toBe(2 ** 34);
  expect((await ForwardModel.open(dir, 'cpu')).referencedGraphWeightBytes).toBe(0);
});

test("a gated DeltaNet's graph indexes its chunks with the fed delta_chunks (a symbolic chunk count keeps its creation linear in its layers)", async () => {
  const model = await ForwardModel.open(await modelWithTokenizer('qwen3_next'));
  const types = model.raw.layer_types as string[];
  const program = await layerBuilderFor(model.raw)(model.weights, model.config, types.indexOf('linear_attention'), model.raw, {});
  const bytes = Buffer.from(program.graph instanceof Uint8Array ? program.graph : program.graph.bytes).toString('latin1');
  expect(bytes).toContain('delta_chunks');
  const full = await layerBuilderFor(model.raw)(model.weights, model.config, types.indexOf('full_attention'), model.raw, {});
  expect(Buffer.from(full.graph instanceof Uint8Array ? full.graph : full.graph.bytes).toString('latin1')).not.toContain('delta_chunks');
});
