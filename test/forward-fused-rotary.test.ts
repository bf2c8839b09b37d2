import ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { calibrate } from '../src/execute/calibrate/calibrate.js';
import { causalMask, ForwardModel } from '../src/execute/forward/executor.js';
import { layerInputs } from '../src/execute/forward/llama-layer.js';
import { attention, rotary, splitHeads } from '../src/execute/forward/ops.js';
import type { LowPrecision } from '../src/execute/forward/precision.js';
import { setFusedAttention, setFusedRotary } from '../src/execute/forward/precision.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { forwardRefs, modelWithTokenizer, relativeError } from './calibrate-refs.js';
import { maxDiff, values, type AttentionCase } from './attention-cases.js';

/** The `[seq, dim]` cos and sin tables of RoPE (base 10000) at positions 0…seq−1, halves repeated as transformers builds them. */
function ropeTables(seq: number, dim: number): { cos: Float32Array; sin: Float32Array } {
  const cos = new Float32Array(seq * dim);
  const sin = new Float32Array(seq * dim);
  for (let t = 0; t < seq; t++)
    for (let i = 0; i < dim; i++) {
      const angle = t / 10000 ** ((2 * (i % (dim / 2))) / dim);
      cos[t * dim + i] = Math.cos(angle);
      sin[t * dim + i] = Math.sin(angle);
    }
  return { cos, sin };
}

type Case = AttentionCase;

/**
 * Attention of one case on unrotated q/k, float32 on the CPU: `kernel` leaves
 * the rotation to the attention (`rope`) in a graph that fuses it, otherwise
 * the queries and keys are rotated by the ops first.
 */
async function attend(c: Case, how: 'kernel' | 'ops' | 'unfused'): Promise<Float32Array> {
  const g = new GraphBuilder();
  if (how === 'kernel') setFusedRotary(g);
  else if (how === 'ops') setFusedAttention(g);
  const q = splitHeads(g, g.input('q', OnnxType.float, ['batch', 'seq', c.heads * c.dim]), c.heads, c.dim);
  const k = splitHeads(g, g.input('k', OnnxType.float, ['batch', 'seq', c.kvHeads * c.dim]), c.kvHeads, c.dim);
  const v = splitHeads(g, g.input('v', OnnxType.float, ['batch', 'seq', c.kvHeads * c.dim]), c.kvHeads, c.dim);
  const cos = g.input('cos', OnnxType.float, ['seq', c.dim]);
  const sin = g.input('sin', OnnxType.float, ['seq', c.dim]);
  const mask = g.input('mask', OnnxType.float, ['seq', 'seq']);
  const rope = { cos, sin, dim: c.dim };
  const out =
    how === 'kernel'
      ? attention(g, q, k, v, mask, c.heads, c.kvHeads, c.dim, c.dim, 0.3, c.window, { rope })
      : attention(g, rotary(g, q, cos, sin, c.dim), rotary(g, k, cos, sin, c.dim), v, mask, c.heads, c.kvHeads, c.dim, c.dim, 0.3, how === 'ops' ? c.window : undefined);
  g.output(out, 'out', OnnxType.float, ['batch', 'seq', c.heads * c.dim]);
  const bytes = g.build('attention');
  expect(Buffer.from(bytes).toString('latin1').includes('do_rotary')).toBe(how === 'kernel');
  const session = await ort.InferenceSession.create(bytes);
  const t = (data: Float32Array, n: number): ort.Tensor => new ort.Tensor('float32', data, [c.batch, c.seq, n]);
  const { cos: cosT, sin: sinT } = ropeTables(c.seq, c.dim);
  const feeds: Record<string, ort.Tensor> = {
    q: t(values(c.batch * c.seq * c.heads * c.dim, 1), c.heads * c.dim),
    k: t(values(c.batch * c.seq * c.kvHeads * c.dim, 2), c.kvHeads * c.dim),
    v: t(values(c.batch * c.seq * c.kvHeads * c.dim, 3), c.kvHeads * c.dim),
    cos: new ort.Tensor('float32', cosT, [c.seq, c.dim]),
    sin: new ort.Tensor('float32', sinT, [c.seq, c.dim]),
    mask: new ort.Tensor('float32', causalMask(c.seq, c.window), [c.seq, c.seq]),
  };
  const r = await session.run(Object.fromEntries(session.inputNames.map((n) => [n, feeds[n]!])));
  await session.release();
  return r.out!.data as Float32Array;
}

describe('RoPE inside the fused attention kernel against rotate_half ops, float32 on the CPU', () => {
  const cases: Case[] = [
    { batch: 2, seq: 9, heads: 4, kvHeads: 2, dim: 32, window: null },
    { batch: 1, seq: 17, heads: 4, kvHeads: 4, dim: 16, window: null },
    { batch: 3, seq: 12, heads: 6, kvHeads: 2, dim: 16, window: 4 },
  ];
  test.each(cases)('$batch×$seq tokens, $heads heads on $kvHeads KV heads of $dim, window $window', async (c) => {
    const kernel = await attend(c, 'kernel');
    expect(maxDiff(kernel, await attend(c, 'ops'))).toBeLessThan(1e-5);
    expect(maxDiff(kernel, await attend(c, 'unfused'))).toBeLessThan(1e-5);
  });

  test('positions matter: the comparison can fail', async () => {
    const c: Case = { batch: 1, seq: 8, heads: 2, kvHeads: 1, dim: 16, window: null };
    const kernel = await attend(c, 'kernel');
    // Without the rotation at all, the output moves.
    const g = new GraphBuilder();
    setFusedAttention(g);
    const q = splitHeads(g, g.input('q', OnnxType.float, [1, 8, 32]), 2, 16);
    const kv = (name: string): string => splitHeads(g, g.input(name, OnnxType.float, [1, 8, 16]), 1, 16);
    g.output(attention(g, q, kv('k'), kv('v'), g.input('mask', OnnxType.float, [8, 8]), 2, 1, 16, 16, 0.3, null), 'out', OnnxType.float, [1, 8, 32]);
    const session = await ort.InferenceSession.create(g.build('plain'));
    const r = await session.run({
      q: new ort.Tensor('float32', values(256, 1), [1, 8, 32]),
      k: new ort.Tensor('float32', values(128, 2), [1, 8, 16]),
      v: new ort.Tensor('float32', values(128, 3), [1, 8, 16]),
    });
    await session.release();
    expect(maxDiff(kernel, r.out!.data as Float32Array)).toBeGreaterThan(1e-2);
  });

  test('a graph that does not fuse its attention rotates with the ops: the same bits', async () => {
    const c: Case = { batch: 2, seq: 7, heads: 2, kvHeads: 1, dim: 8, window: null };
    const g = new GraphBuilder();
    const q = splitHeads(g, g.input('q', OnnxType.float, ['batch', 'seq', 16]), 2, 8);
    const k = splitHeads(g, g.input('k', OnnxType.float, ['batch', 'seq', 8]), 1, 8);
    const v = splitHeads(g, g.input('v', OnnxType.float, ['batch', 'seq', 8]), 1, 8);
    const cos = g.input('cos', OnnxType.float, ['seq', 8]);
    const sin = g.input('sin', OnnxType.float, ['seq', 8]);
    g.output(attention(g, q, k, v, g.input('mask', OnnxType.float, ['seq', 'seq']), 2, 1, 8, 8, 0.3, null, { rope: { cos, sin, dim: 8 } }), 'out', OnnxType.float, ['batch', 'seq', 16]);
    expect(Buffer.from(g.build('a')).toString('latin1')).not.toContain('GroupQueryAttention');
    const session = await ort.InferenceSession.create(g.build('a'));
    const { cos: cosT, sin: sinT } = ropeTables(7, 8);
    const r = await session.run({
      q: new ort.Tensor('float32', values(2 * 7 * 16, 1), [2, 7, 16]),
      k: new ort.Tensor('float32', values(2 * 7 * 8, 2), [2, 7, 8]),
      v: new ort.Tensor('float32', values(2 * 7 * 8, 3), [2, 7, 8]),
      cos: new ort.Tensor('float32', cosT, [7, 8]),
      sin: new ort.Tensor('float32', sinT, [7, 8]),
      mask: new ort.Tensor('float32', causalMask(7, null), [7, 7]),
    });
    await session.release();
    expect(maxDiff(r.out!.data as Float32Array, await attend(c, 'unfused'))).toBe(0);
  });
});

describe('llama layers leave RoPE to the attention kernel only where nothing reads the rotated keys', () => {
  const low: LowPrecision = { dtype: 'float16', native: true, fusedAttention: true, fusedRotary: true };
  const rotates = async (observe?: Parameters<ForwardModel['buildLayerInto']>[3], fusedRotary = true): Promise<boolean> => {
    const model = await ForwardModel.open(await modelWithTokenizer('llama'));
    model.precision = { requested: 'bf16', runs: 'float16', low: { ...low, fusedRotary } };
    const g = new GraphBuilder();
    await model.buildLayerInto(0, model.weights, { g, inputs: layerInputs(g, model.config.hidden, model.config.rope.dim), output: 'out' }, observe);
    return Buffer.from(g.build('layer')).toString('latin1').includes('do_rotary');
  };
  test('a plain forward pass and a calibration that observes no KV cache rotate in the kernel', async () => {
    expect(await rotates()).toBe(true);
    expect(await rotates({ experts: 'all', hessians: false, observes: (m) => !/_states(?:\.h\d+)?$/.test(m) })).toBe(true);
  });
  test('observing the keys (a quantized KV cache, or every input) keeps the rotation in the graph', async () => {
    expect(await rotates('all')).toBe(false);
    expect(await rotates({ experts: 'all', hessians: false, observes: (m) => m.endsWith('.key_states') })).toBe(false);
    // Per-head kv-cache scales (attn_head) and attention quantization's query states read rotated states too.
    expect(await rotates({ experts: 'all', hessians: false, observes: (m) => /\.key_states\.h\d+$/.test(m) })).toBe(false);
    expect(await rotates({ experts: 'all', hessians: false, observes: (m) => m.endsWith('.query_states') })).toBe(false);
    expect(await rotates({ experts: 'all', hessians: true })).toBe(false);
  });
  test('without fusedRotary (QUANTC_FUSED_ROPE unset) it stays in the graph', async () => {
    expect(await rotates(undefined, false)).toBe(false);
  });
});

describe('the fused RMSNorm kernel takes the decoder norms only', () => {
  test('qwen3: the two decoder norms of a layer are fused, its per-head q/k norms are not', async () => {
    const count = async (fusedNorms: boolean): Promise<number> => {
      const model = await ForwardModel.open(await modelWithTokenizer('qwen3'));
      model.precision = { requested: 'bf16', runs: 'float16', low: { dtype: 'float16', native: true, fusedAttention: true, fusedNorms } };
      const g = new GraphBuilder();
      await model.buildLayerInto(0, model.weights, { g, inputs: layerInputs(g, model.config.hidden, model.config.rope.dim), output: 'out' });
      return Buffer.from(g.build('layer')).toString('latin1').split('SimplifiedLayerNormalization').length - 1;
    };
    expect(await count(true)).toBe(2);
    expect(await count(false)).toBe(0);
  });
});

// The CPU provider runs float16 MatMul, GroupQueryAttention and SimplifiedLayerNormalization (its arithmetic
// ops compute in float32): the fused kernels are checked here for running within the low dtype's rounding of
// the op-by-op graphs on every low-precision architecture; precision-parity.ts measures bf16 on the card.
describe('fused RoPE and RMSNorm kernels on every low-precision architecture, float16 on the CPU', () => {
  // phimoe and glm_moe_dsa are left out: their sparsemixer thresholds and top-16 keys turn one rounding step into
  // another expert or key, so their logits are no measure of the kernels' rounding.
  const models = ['llama', 'qwen2', 'qwen3', 'mistral', 'qwen3_moe', 'qwen2_moe', 'mixtral', 'olmoe', 'deepseek_v3', 'glm4_moe', 'glm4_moe_lite', 'granitemoe', 'qwen3_next', 'gpt_oss', 'llama4_text'];
  const base: LowPrecision = { dtype: 'float16', native: true, fusedAttention: true, narrow: 'exact' };
  const logits = async (dir: string, ids: number[][], low: LowPrecision): Promise<Float32Array> => {
    const model = await ForwardModel.open(dir);
    model.precision = { requested: 'bf16', runs: 'float16', low };
    return (await model.head(await model.layers(await model.embed([ids])), 'logits'))[0]!;
  };
  for (const name of models) {
    test(`${name}: logits within float16 rounding of the op-by-op graph`, async () => {
      const dir = await modelWithTokenizer(name);
      const ids = (await forwardRefs(name)).inputIds;
      const ops = await logits(dir, ids, base);
      const fused = await logits(dir, ids, { ...base, fusedRotary: true, fusedNorms: true });
      expect(relativeError(fused, ops)).toBeLessThan(3e-3);
    });
  }
});

describe('calibration observes only the modules asked for', () => {
  test('the same statistics for those modules, none for the others', async () => {
    const dir = await modelWithTokenizer('qwen3_moe');
    const ids = (await forwardRefs('qwen3_moe')).inputIds;
    const all = (await calibrate(await ForwardModel.open(dir), [ids])).inputs;
    const wanted = (m: string): boolean => m.endsWith('.o_proj') || m.endsWith('.value_states');
    const some = (await calibrate(await ForwardModel.open(dir), [ids], true, undefined, { observes: wanted })).inputs;
    const kept = [...all.keys()].filter((m) => wanted(m) || /\.experts\.\d+\./.test(m));
    expect([...some.keys()].sort()).toEqual(kept.sort());
    expect(kept.some((m) => m.endsWith('.o_proj'))).toBe(true);
    for (const m of kept) expect(some.get(m), m).toEqual(all.get(m));
  });
});
