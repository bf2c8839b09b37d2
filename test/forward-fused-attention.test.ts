import ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { causalMask } from '../src/execute/forward/executor.js';
import { attention, chunkedAttention, rotary, splitHeads, splitHeadsLast, perHeadTable } from '../src/execute/forward/ops.js';
import { setFusedAttention, setGraphPrecision, setMultiHeadAttention } from '../src/execute/forward/precision.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../src/execute/runtime.js';
import { maxDiff, values, type AttentionCase } from './attention-cases.js';

type Case = AttentionCase;

/** Runs graph `g` (inputs q, k, v `[B, T, n·D]` and the causal mask of the case's window, plus `extra`) on the case's values; its output `out`. */
async function runAttention(c: Case, g: GraphBuilder, extra: Record<string, ort.Tensor> = {}): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(g.build('attention'));
  const t = (data: Float32Array, n: number): ort.Tensor => new ort.Tensor('float32', data, [c.batch, c.seq, n]);
  const r = await session.run({
    q: t(values(c.batch * c.seq * c.heads * c.dim, 1), c.heads * c.dim),
    k: t(values(c.batch * c.seq * c.kvHeads * c.dim, 2), c.kvHeads * c.dim),
    v: t(values(c.batch * c.seq * c.kvHeads * c.dim, 3), c.kvHeads * c.dim),
    mask: new ort.Tensor('float32', causalMask(c.seq, c.window), [c.seq, c.seq]),
    ...extra,
  });
  await session.release();
  return r.out!.data as Float32Array;
}

/** Attention of one case, as the MatMul/Softmax ops and as the fused kernel (GroupQueryAttention, or MultiHeadAttention where the attention is plain causal and `multiHead`), on the CPU in float32. */
async function both(c: Case, fuse: boolean, multiHead = false): Promise<{ ops: Float32Array; fused: Float32Array }> {
  const run = async (fused: boolean): Promise<Float32Array> => {
    const g = new GraphBuilder();
    if (fused) (multiHead ? setMultiHeadAttention : setFusedAttention)(g);
    const q = g.input('q', OnnxType.float, ['batch', 'seq', c.heads * c.dim]);
    const k = g.input('k', OnnxType.float, ['batch', 'seq', c.kvHeads * c.dim]);
    const v = g.input('v', OnnxType.float, ['batch', 'seq', c.kvHeads * c.dim]);
    const mask = g.input('mask', OnnxType.float, ['seq', 'seq']);
    const out = attention(g, splitHeads(g, q, c.heads, c.dim), splitHeads(g, k, c.kvHeads, c.dim), splitHeads(g, v, c.kvHeads, c.dim), mask, c.heads, c.kvHeads, c.dim, c.dim, 0.3, fuse ? c.window : undefined);
    g.output(out, 'out', OnnxType.float, ['batch', 'seq', c.heads * c.dim]);
    return runAttention(c, g);
  };
  return { ops: await run(false), fused: await run(true) };
}

describe('heads-last inputs to the fused kernel', () => {
  /** RoPE then fused attention of one case, with the heads split in place (the halves swapped by a Gather) or transposed first. */
  async function run(c: Case, headsLast: boolean, multiHead = false): Promise<Float32Array> {
    const g = new GraphBuilder();
    (multiHead ? setMultiHeadAttention : setFusedAttention)(g);
    const split = headsLast ? splitHeadsLast : splitHeads;
    const table = (t: string): string => (headsLast ? perHeadTable(g, t) : t);
    const cos = g.input('cos', OnnxType.float, ['seq', c.dim]);
    const sin = g.input('sin', OnnxType.float, ['seq', c.dim]);
    // Heads-last, rotate_half's swap is one Gather; transposed, Slices and a Concat.
    const q = rotary(g, split(g, g.input('q', OnnxType.float, ['batch', 'seq', c.heads * c.dim]), c.heads, c.dim), table(cos), table(sin), c.dim, headsLast);
    const k = rotary(g, split(g, g.input('k', OnnxType.float, ['batch', 'seq', c.kvHeads * c.dim]), c.kvHeads, c.dim), table(cos), table(sin), c.dim, headsLast);
    const v = split(g, g.input('v', OnnxType.float, ['batch', 'seq', c.kvHeads * c.dim]), c.kvHeads, c.dim);
    const mask = g.input('mask', OnnxType.float, ['seq', 'seq']);
    g.output(attention(g, q, k, v, mask, c.heads, c.kvHeads, c.dim, c.dim, 0.3, c.window, { headsLast }), 'out', OnnxType.float, ['batch', 'seq', c.heads * c.dim]);
    return runAttention(c, g, {
      cos: new ort.Tensor('float32', values(c.seq * c.dim, 4), [c.seq, c.dim]),
      sin: new ort.Tensor('float32', values(c.seq * c.dim, 5), [c.seq, c.dim]),
    });
  }

  test.each([
    { batch: 2, seq: 9, heads: 4, kvHeads: 2, dim: 8, window: null },
    { batch: 3, seq: 12, heads: 6, kvHeads: 2, dim: 8, window: 4 },
  ])('give the bits of transposed inputs: $batch×$seq tokens, $heads heads on $kvHeads, window $window', async (c) => {
    const last = await run(c, true);
    expect(Array.from(last).every(Number.isFinite)).toBe(true);
    expect(Buffer.from(last.buffer).equals(Buffer.from((await run(c, false)).buffer))).toBe(true);
  });

  test('give the bits of transposed inputs to MultiHeadAttention too', async () => {
    const c: Case = { batch: 2, seq: 9, heads: 4, kvHeads: 2, dim: 8, window: null };
    const last = await run(c, true, true);
    expect(Array.from(last).every(Number.isFinite)).toBe(true);
    expect(Buffer.from(last.buffer).equals(Buffer.from((await run(c, false, true)).buffer))).toBe(true);
  });

  test('are refused where the attention is not the fused kernel', () => {
    const g = new GraphBuilder();
    const x = g.input('x', OnnxType.float, [1, 2, 2, 8]);
    expect(() => attention(g, x, x, x, g.input('mask', OnnxType.float, [2, 2]), 2, 2, 8, 8, 0.3, null, { headsLast: true })).toThrow(/fused kernel only/);
  });
});

describe('fused attention (GroupQueryAttention, MultiHeadAttention) against the MatMul/Softmax ops, float32 on the CPU', () => {
  const cases: Case[] = [
    { batch: 2, seq: 9, heads: 4, kvHeads: 2, dim: 8, window: null },
    { batch: 1, seq: 17, heads: 4, kvHeads: 4, dim: 16, window: null },
    { batch: 3, seq: 12, heads: 6, kvHeads: 2, dim: 8, window: 4 },
    { batch: 1, seq: 5, heads: 2, kvHeads: 1, dim: 8, window: 1 },
  ];
  test.each(cases)('$batch×$seq tokens, $heads heads on $kvHeads KV heads of $dim, window $window', async (c) => {
    const { ops, fused } = await both(c, true);
    expect(maxDiff(fused, ops)).toBeLessThan(1e-5);
  });

  test.each([
    { batch: 2, seq: 9, heads: 4, kvHeads: 2, dim: 8, window: null },
    { batch: 1, seq: 17, heads: 4, kvHeads: 4, dim: 16, window: null },
    { batch: 2, seq: 6, heads: 8, kvHeads: 1, dim: 8, window: null },
  ])('MultiHeadAttention on the KV heads repeated: $batch×$seq tokens, $heads heads on $kvHeads KV heads of $dim', async (c) => {
    const { ops, fused } = await both(c, true, true);
    expect(maxDiff(fused, ops)).toBeLessThan(1e-5);
    // Repeating each KV head for its group of queries (not tiling the heads) is what the comparison can tell.
    const { fused: gqa } = await both(c, true);
    expect(maxDiff(fused, gqa)).toBeLessThan(1e-5);
  });

  test('a graph that fuses its attention still applies a mask it knows nothing of', async () => {
    // Without a window (undefined), the mask input is read: here it hides keys 4 or more back, which GroupQueryAttention would not.
    const { ops, fused } = await both({ batch: 1, seq: 10, heads: 2, kvHeads: 2, dim: 8, window: 4 }, false);
    expect(maxDiff(fused, ops)).toBe(0);
  });

  test('a wrong window is seen: the comparison can fail', async () => {
    const c: Case = { batch: 1, seq: 12, heads: 2, kvHeads: 1, dim: 8, window: 4 };
    const { fused } = await both(c, true);
    const { ops } = await both({ ...c, window: 5 }, true);
    expect(maxDiff(fused, ops)).toBeGreaterThan(1e-3);
  });

  test('only graphs asked to fuse their attention build the contrib node: MultiHeadAttention for plain causal attention where asked, GroupQueryAttention otherwise', () => {
    const build = (fused: boolean, low: boolean, window: number | null = null, multiHead = false): string => {
      const g = new GraphBuilder();
      if (low) setGraphPrecision(g, { dtype: 'bfloat16', native: true, fusedAttention: fused, multiHeadAttention: multiHead });
      else if (fused) (multiHead ? setMultiHeadAttention : setFusedAttention)(g);
      const q = g.input('q', OnnxType.float, [1, 4, 2, 8]);
      g.output(attention(g, q, q, q, g.input('mask', OnnxType.float, [4, 4]), 2, 2, 8, 8, 0.5, window), 'out', OnnxType.float, [1, 4, 16]);
      return Buffer.from(g.build('a')).toString('latin1');
    };
    expect(build(true, true)).toContain('GroupQueryAttention');
    expect(build(true, true)).toContain('com.microsoft');
    expect(build(true, true, null, true)).toContain('MultiHeadAttention');
    expect(build(true, true, null, true)).not.toContain('GroupQueryAttention');
    expect(build(true, true, 2, true)).toContain('GroupQueryAttention');
    expect(build(false, true, null, true)).not.toContain('com.microsoft');
    expect(build(false, true)).not.toContain('GroupQueryAttention');
    expect(build(false, false)).not.toContain('com.microsoft');
    expect(build(true, false)).toContain('GroupQueryAttention');
    expect(build(true, false, null, true)).toContain('MultiHeadAttention');
  });
});

describe('chunked attention (Llama 4) as the fused kernel on chunk-long sequences, float32 on the CPU', () => {
  /** Attention within chunks of `chunk` positions: the fused chunks, or the ops on a chunk-restricted causal mask. */
  const run = async (c: AttentionCase, chunk: number, fused: boolean): Promise<Float32Array> => {
    const g = new GraphBuilder();
    const input = (name: string, n: number): string => splitHeads(g, g.input(name, OnnxType.float, ['batch', 'seq', n * c.dim]), n, c.dim);
    const [q, k, v] = [input('q', c.heads), input('k', c.kvHeads), input('v', c.kvHeads)];
    const out = fused
      ? chunkedAttention(g, q, k, v, c.heads, c.kvHeads, c.dim, 0.3, chunk)
      : attention(g, q, k, v, g.input('mask', OnnxType.float, ['seq', 'seq']), c.heads, c.kvHeads, c.dim, c.dim, 0.3);
    g.output(out, 'out', OnnxType.float, ['batch', 'seq', c.heads * c.dim]);
    const session = await ort.InferenceSession.create(g.build('chunked'));
    const t = (n: number, seed: number): ort.Tensor => new ort.Tensor('float32', values(c.batch * c.seq * n * c.dim, seed), [c.batch, c.seq, n * c.dim]);
    const mask = causalMask(c.seq);
    for (let i = 0; i < c.seq; i++) for (let j = 0; j < c.seq; j++) if (Math.floor(i / chunk) !== Math.floor(j / chunk)) mask[i * c.seq + j] = mask[0 * c.seq + 1]!;
    const feeds: Record<string, ort.Tensor> = { q: t(c.heads, 1), k: t(c.kvHeads, 2), v: t(c.kvHeads, 3) };
    if (!fused) feeds.mask = new ort.Tensor('float32', mask, [c.seq, c.seq]);
    const r = await session.run(feeds);
    await session.release();
    return r.out!.data as Float32Array;
  };
  const cases: [AttentionCase, number][] = [
    [{ batch: 2, seq: 10, heads: 4, kvHeads: 2, dim: 8, window: null }, 4],
    [{ batch: 1, seq: 12, heads: 2, kvHeads: 2, dim: 16, window: null }, 4],
    [{ batch: 2, seq: 3, heads: 4, kvHeads: 1, dim: 8, window: null }, 4],
    [{ batch: 1, seq: 9, heads: 2, kvHeads: 1, dim: 8, window: null }, 1],
  ];
  test.each(cases)('%o in chunks of %i', async (c, chunk) => {
    const fused = await run(c, chunk, true);
    expect(fused.length).toBe(c.batch * c.seq * c.heads * c.dim);
    expect(maxDiff(fused, await run(c, chunk, false))).toBeLessThan(1e-5);
  });

  test('a wrong chunk is seen: the comparison can fail', async () => {
    const c: AttentionCase = { batch: 1, seq: 10, heads: 2, kvHeads: 1, dim: 8, window: null };
    expect(maxDiff(await run(c, 4, true), await run(c, 5, false))).toBeGreaterThan(1e-3);
  });
});

describe('a graph whose attention is fused never reads the mask', () => {
  test('the mask is no graph input, and a lazy mask feed is never made', async () => {
    const rt = new GraphRuntime('cpu');
    const c = { batch: 1, seq: 6, heads: 2, kvHeads: 1, dim: 8 };
    const build = (fused: boolean): Uint8Array => {
      const g = new GraphBuilder();
      if (fused) setFusedAttention(g);
      const q = g.input('q', OnnxType.float, [c.batch, c.seq, c.heads * c.dim]);
      const kv = g.input('kv', OnnxType.float, [c.batch, c.seq, c.kvHeads * c.dim]);
      const mask = g.input('mask', OnnxType.float, [c.seq, c.seq]);
      const k = splitHeads(g, kv, c.kvHeads, c.dim);
      g.output(attention(g, splitHeads(g, q, c.heads, c.dim), k, k, mask, c.heads, c.kvHeads, c.dim, c.dim, 0.3, null), 'out', OnnxType.float, [c.batch, c.seq, c.heads * c.dim]);
      return g.build('attention');
    };
    let made = 0;
    const feeds = {
      q: { type: 'float32' as const, data: values(c.seq * c.heads * c.dim, 4), dims: [c.batch, c.seq, c.heads * c.dim] },
      kv: { type: 'float32' as const, data: values(c.seq * c.kvHeads * c.dim, 5), dims: [c.batch, c.seq, c.kvHeads * c.dim] },
      mask: () => (made++, { type: 'float32' as const, data: causalMask(c.seq), dims: [c.seq, c.seq] }),
    };
    const fused = await rt.run('fused', () => build(true), feeds);
    expect(made).toBe(0);
    const ops = await rt.run('ops', () => build(false), feeds);
    expect(made).toBe(1);
    expect(maxDiff(fused.out!.data as Float32Array, ops.out!.data as Float32Array)).toBeLessThan(1e-5);
    await rt.dispose();
  });
});

describe('float32 layers on the CPU fuse plain causal attention only', () => {
  test('the same layer outputs as the masked ops, bit for bit, on the tiny llama and mistral (sliding window: masked ops kept)', async () => {
    const { ForwardModel } = await import('../src/execute/forward/executor.js');
    const { forwardRefs, modelWithTokenizer } = await import('./calibrate-refs.js');
    for (const name of ['llama', 'mistral'] as const) {
      const dir = await modelWithTokenizer(name);
      const ids = (await forwardRefs(name)).inputIds;
      const run = async (fused: boolean): Promise<Float32Array[]> => {
        const model = await ForwardModel.open(dir);
        expect(model.fusePlainAttention).toBe(true);
        model.fusePlainAttention = fused;
        const out: Float32Array[] = [];
        await model.layers(await model.embed([ids]), { onLayer: (layer, _b, h) => (out[layer] = Float32Array.from(h.data)) });
        return out;
      };
      expect(await run(true), name).toEqual(await run(false));
    }
  });
});
