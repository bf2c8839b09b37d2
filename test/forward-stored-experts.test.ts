import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { readExperts, storedExperts, storedInputMajorExperts } from '../src/execute/forward/moe.js';
import { setGraphPrecision } from '../src/execute/forward/precision.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../src/execute/runtime.js';
import { parseSafetensors, serializeSafetensors } from './execute/fixtures.js';

const TREES = join(import.meta.dirname, 'fixtures/trees/checkpoints');

interface Case {
  readonly model: string;
  readonly module: string;
  readonly experts: number;
  readonly hidden: number;
  readonly inter: number;
}

/**
 * The qwen3_moe tree checkpoint with its layer-0 experts fused as
 * transformers 5 holds them in memory (`gate_up_proj [E, 2I, H]`,
 * `down_proj [E, H, I]`), the layout fused checkpoints store.
 */
async function fusedQwen3Moe(c: Case): Promise<string> {
  const src = join(TREES, 'qwen3_moe');
  const tensors = parseSafetensors(new Uint8Array(await readFile(join(src, 'model.safetensors'))));
  const prefix = `${c.module}.experts.`;
  const cat = (names: string[]): Uint8Array => Buffer.concat(names.map((n) => tensors.get(n)!.bytes));
  const experts = Array.from({ length: c.experts }, (_, e) => e);
  const fused = new Map([...tensors].filter(([name]) => !name.startsWith(prefix)));
  fused.set(`${prefix}gate_up_proj`, { dtype: 'BF16', shape: [c.experts, 2 * c.inter, c.hidden], bytes: cat(experts.flatMap((e) => [`${prefix}${e}.gate_proj.weight`, `${prefix}${e}.up_proj.weight`])) });
  fused.set(`${prefix}down_proj`, { dtype: 'BF16', shape: [c.experts, c.hidden, c.inter], bytes: cat(experts.map((e) => `${prefix}${e}.down_proj.weight`)) });
  const dir = await mkdtemp(join(tmpdir(), 'quantc-fused-experts-'));
  await copyFile(join(src, 'config.json'), join(dir, 'config.json'));
  await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(fused));
  return dir;
}

const CASES: readonly (Case & { readonly fused?: boolean })[] = [
  { model: 'qwen3_moe', module: 'model.layers.0.mlp', experts: 4, hidden: 16, inter: 8 },
  { model: 'qwen3_moe', module: 'model.layers.0.mlp', experts: 4, hidden: 16, inter: 8, fused: true },
  { model: 'mixtral', module: 'model.layers.0.block_sparse_moe', experts: 4, hidden: 16, inter: 32 },
  { model: 'granitemoe', module: 'model.layers.0.block_sparse_moe', experts: 4, hidden: 16, inter: 32 },
];

test.each(CASES)('experts of $model ($module, fused: $fused) go into bf16 graphs as the checkpoint stores them, read from its file: the float32 stack\'s values', async (c) => {
  const dir = c.fused ? await fusedQwen3Moe(c) : join(TREES, c.model);
  const model = await ForwardModel.open(dir);
  const w = model.weights;
  const start = 1;
  const count = c.experts - 2;
  const g = new GraphBuilder();
  setGraphPrecision(g, { dtype: 'bfloat16', native: true });
  const stored = await storedExperts(g, w, c.module, count, c.hidden, c.inter, start);
  expect(stored?.bf16).toBe(true);
  for (const k of ['gate', 'up', 'down'] as const) g.output(g.op('Cast', [stored![k]], { to: OnnxType.float }), k, OnnxType.float, k === 'down' ? [count, c.inter, c.hidden] : [count, c.hidden, c.inter]);
  const bytes = g.model('stored_experts');
  // Every expert weight is referenced in the checkpoint's file, not copied.
  expect('externalData' in bytes).toBe(true);
  const text = new TextDecoder('latin1').decode('externalData' in bytes ? bytes.bytes : bytes);
  expect(text.split('model.safetensors').length - 1).toBe(c.fused || c.model === 'granitemoe' ? 2 : 3 * count);
  const rt = new GraphRuntime('cpu');
  try {
    const out = await rt.run('stored', () => bytes, {});
    const stack = await readExperts(w, c.module, count, c.hidden, c.inter, start);
    expect(out.gate!.data).toEqual(stack.gate);
    expect(out.up!.data).toEqual(stack.up);
    expect(out.down!.data).toEqual(stack.down);
  } finally {
    await rt.dispose();
  }
});

test('float32 graphs, fed graphs and replaced experts keep the float32 stack', async () => {
  const c = CASES[0]!;
  const model = await ForwardModel.open(join(TREES, c.model));
  const fp32 = new GraphBuilder();
  expect(await storedExperts(fp32, model.weights, c.module, c.experts, c.hidden, c.inter, 0)).toBeUndefined();
  const emulated = new GraphBuilder();
  setGraphPrecision(emulated, { dtype: 'bfloat16', native: false });
  expect(await storedExperts(emulated, model.weights, c.module, c.experts, c.hidden, c.inter, 0)).toBeUndefined();
  const { OverlayWeights } = await import('../src/execute/pipeline/overlay-weights.js');
  const replaced = await model.weights.linear(`${c.module}.experts.2.up_proj`);
  const overlay = new OverlayWeights(model.weights, { linears: new Map([[`${c.module}.experts.2.up_proj`, replaced]]), vectors: new Map() }, []);
  const g = new GraphBuilder();
  setGraphPrecision(g, { dtype: 'bfloat16', native: true });
  expect(await storedExperts(g, overlay, c.module, c.experts, c.hidden, c.inter, 0)).toBeUndefined();
  // Nothing was added to the graph on the way to the fallback.
  expect(g.build('none').length).toBeLessThan(200);
  // Experts outside the replaced one still come as stored.
  expect(await storedExperts(g, overlay, c.module, 2, c.hidden, c.inter, 0)).toBeDefined();
});

test.each([true, false])("gpt-oss's and Llama 4's input-major experts (gate/up interleaved: %s) go into bf16 graphs as stored, gate and up cut out in the graph", async (interleaved) => {
  // gpt_oss's tree checkpoint: gate_up_proj [4, 16, 64] and down_proj [4, 32, 16], bf16; read as Llama 4's (halves) too.
  const dir = join(TREES, 'gpt_oss');
  const model = await ForwardModel.open(dir);
  const m = 'model.layers.0.mlp';
  const [experts, hidden, inter] = [4, 16, 32];
  const start = 1;
  const count = 2;
  const g = new GraphBuilder();
  setGraphPrecision(g, { dtype: 'bfloat16', native: true });
  const stored = storedInputMajorExperts(g, model.weights, m, count, hidden, inter, start, interleaved);
  expect(stored?.bf16).toBe(true);
  for (const k of ['gate', 'up', 'down'] as const) g.output(g.op('Cast', [stored![k]], { to: OnnxType.float }), k, OnnxType.float, null);
  const bytes = g.model('stored_experts');
  expect('externalData' in bytes).toBe(true);
  const fused = await model.weights.slice(`${m}.experts.gate_up_proj`, start, count);
  const down = await model.weights.slice(`${m}.experts.down_proj`, start, count);
  const gate = new Float32Array(count * hidden * inter);
  const up = new Float32Array(count * hidden * inter);
  for (let r = 0; r < count * hidden; r++)
    for (let j = 0; j < inter; j++) {
      gate[r * inter + j] = fused[r * 2 * inter + (interleaved ? 2 * j : j)]!;
      up[r * inter + j] = fused[r * 2 * inter + (interleaved ? 2 * j + 1 : inter + j)]!;
    }
  const rt = new GraphRuntime('cpu');
  try {
    const out = await rt.run('stored', () => bytes, {});
    expect(out.gate!.dims).toEqual([count, hidden, inter]);
    expect(out.gate!.data).toEqual(gate);
    expect(out.up!.data).toEqual(up);
    expect(out.down!.data).toEqual(down);
  } finally {
    await rt.dispose();
  }
  // Float32 and fed graphs, the wrong shape and a range past the experts keep the float32 stacks.
  expect(storedInputMajorExperts(new GraphBuilder(), model.weights, m, count, hidden, inter, start, interleaved)).toBeUndefined();
  const fed = new GraphBuilder();
  setGraphPrecision(fed, { dtype: 'bfloat16', native: true });
  fed.feedWeights(new (await import('../src/execute/onnx/graph-builder.js')).WeightFeeds());
  expect(storedInputMajorExperts(fed, model.weights, m, count, hidden, inter, start, interleaved)).toBeUndefined();
  expect(storedInputMajorExperts(g, model.weights, m, count, inter, hidden, start, interleaved)).toBeUndefined();
  expect(storedInputMajorExperts(g, model.weights, m, experts, hidden, inter, start, interleaved)).toBeUndefined();
});
