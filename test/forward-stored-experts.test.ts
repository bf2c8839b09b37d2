import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { readExperts, storedExperts } from '../src/execute/forward/moe.js';
import { setGraphPrecision } from '../src/execute/forward/precision.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../src/execute/runtime.js';

const TREES = join(import.meta.dirname, 'fixtures/trees/checkpoints');

interface Case {
  readonly model: string;
  readonly module: string;
  readonly experts: number;
  readonly hidden: number;
  readonly inter: number;
}

/** The safetensors bytes of `tensors` (all BF16, in this order). */
function safetensors(tensors: readonly { name: string; shape: number[]; bytes: Uint8Array }[]): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}

/**
 * The qwen3_moe tree checkpoint with its layer-0 experts fused as
 * transformers 5 holds them in memory (`gate_up_proj [E, 2I, H]`,
 * `down_proj [E, H, I]`), the layout fused checkpoints store.
 */
async function fusedQwen3Moe(c: Case): Promise<string> {
  const src = join(TREES, 'qwen3_moe');
  const bytes = new Uint8Array(await readFile(join(src, 'model.safetensors')));
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { shape: number[]; data_offsets: [number, number] }>;
  const data = (name: string): Uint8Array => bytes.subarray(8 + n + header[name]!.data_offsets[0], 8 + n + header[name]!.data_offsets[1]);
  const prefix = `${c.module}.experts.`;
  const kept = Object.keys(header).filter((k) => k !== '__metadata__' && !k.startsWith(prefix));
  const cat = (names: string[]): Uint8Array => {
    const parts = names.map(data);
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) (out.set(p, at), (at += p.length));
    return out;
  };
  const experts = Array.from({ length: c.experts }, (_, e) => e);
  const tensors = [
    ...kept.map((name) => ({ name, shape: header[name]!.shape, bytes: data(name) })),
    { name: `${prefix}gate_up_proj`, shape: [c.experts, 2 * c.inter, c.hidden], bytes: cat(experts.flatMap((e) => [`${prefix}${e}.gate_proj.weight`, `${prefix}${e}.up_proj.weight`])) },
    { name: `${prefix}down_proj`, shape: [c.experts, c.hidden, c.inter], bytes: cat(experts.map((e) => `${prefix}${e}.down_proj.weight`)) },
  ];
  const dir = await mkdtemp(join(tmpdir(), 'quantc-fused-experts-'));
  await copyFile(join(src, 'config.json'), join(dir, 'config.json'));
  await writeFile(join(dir, 'model.safetensors'), safetensors(tensors));
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
  expect(g.model('none') instanceof Uint8Array ? (g.model('none') as Uint8Array).length : 0).toBeLessThan(200);
  // Experts outside the replaced one still come as stored.
  expect(await storedExperts(g, overlay, c.module, 2, c.hidden, c.inter, 0)).toBeDefined();
});
