import { expect, test } from 'vitest';
import { combineExperts, softmaxTopK, type Routing } from '../src/execute/forward/moe.js';
import { roundBf16, rounded, setGraphPrecision, type LowPrecision } from '../src/execute/forward/precision.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../src/execute/runtime.js';
import { xorshift32 } from './bench/xorshift.js';

const E = 16;
const N = 37;
const H = 24;
const K = 4;

/** Deterministic values in [-scale, scale) (xorshift32). */
function values(count: number, seed: number, scale: number): Float32Array {
  const random = xorshift32(seed);
  return Float32Array.from({ length: count }, () => (random() / 2 ** 32 - 0.5) * 2 * scale);
}

/** The combined output of random per-expert outputs under a softmax top-K routing, gathering the routed rows or summing every expert. */
async function combined(low: LowPrecision | undefined, gather: boolean): Promise<Float32Array> {
  const g = new GraphBuilder();
  setGraphPrecision(g, low);
  const perExpert = g.input('y', OnnxType.float, [E, N, H]);
  const logits = g.input('logits', OnnxType.float, [N, E]);
  const routing = softmaxTopK(g, logits, K, true);
  const r: Routing = gather ? routing : { weights: routing.weights, mask: routing.mask };
  g.output(combineExperts(g, low ? rounded(g, perExpert) : perExpert, r, E), 'out', OnnxType.float, [N, H]);
  const rt = new GraphRuntime('cpu');
  try {
    const out = await rt.run('combine', () => g.build('combine'), {
      y: { type: 'float32', data: values(E * N * H, 7, 40), dims: [E, N, H] },
      logits: { type: 'float32', data: values(N * E, 11, 3), dims: [N, E] },
    });
    return out.out!.data as Float32Array;
  } finally {
    await rt.dispose();
  }
}

test('routed experts gathered in expert order sum to the same bits as every expert summed in order', async () => {
  for (const low of [{ dtype: 'bfloat16', native: false }, { dtype: 'float16', native: false }, { dtype: 'float16', native: true, narrow: 'exact' }] as LowPrecision[]) {
    const all = await combined(low, false);
    const routed = await combined(low, true);
    expect(routed).toEqual(all);
    // Not a sum of zeros: most outputs are far from 0.
    expect(all.filter((v) => Math.abs(v) > 1).length).toBeGreaterThan(all.length / 2);
  }
});

test('a routing of every expert, or float32, takes the paths it always took', async () => {
  const f32 = await combined(undefined, true);
  expect(f32).toEqual(await combined(undefined, false));
});

test('without an expert count (gpt-oss) the low-dtype combine still rounds each weighted output before the float32 sum', async () => {
  const g = new GraphBuilder();
  setGraphPrecision(g, { dtype: 'bfloat16', native: false });
  const y = g.input('y', OnnxType.float, [E, N, H]);
  const routing = softmaxTopK(g, g.input('logits', OnnxType.float, [N, E]), K, true);
  g.output(combineExperts(g, rounded(g, y), routing), 'out', OnnxType.float, [N, H]);
  g.output(routing.weights, 'w', OnnxType.float, [N, E]);
  g.output(rounded(g, y), 'yr', OnnxType.float, [E, N, H]);
  const rt = new GraphRuntime('cpu');
  try {
    const r = await rt.run('combine_all', () => g.build('combine_all'), {
      y: { type: 'float32', data: values(E * N * H, 7, 40), dims: [E, N, H] },
      logits: { type: 'float32', data: values(N * E, 11, 3), dims: [N, E] },
    });
    const out = r.out!.data as Float32Array;
    const w = r.w!.data as Float32Array;
    const yr = r.yr!.data as Float32Array;
    let worstRounded = 0;
    let worstUnrounded = 0;
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++) {
        let rounded = 0;
        let unrounded = 0;
        for (let e = 0; e < E; e++) {
          const p = Math.fround(yr[(e * N + n) * H + h]! * w[n * E + e]!);
          rounded += roundBf16(p);
          unrounded += p;
        }
        const got = out[n * H + h]!;
        const scale = Math.max(1, Math.abs(got));
        worstRounded = Math.max(worstRounded, Math.abs(got - rounded) / scale);
        worstUnrounded = Math.max(worstUnrounded, Math.abs(got - unrounded) / scale);
      }
    expect(worstRounded).toBeLessThan(1e-5);
    expect(worstUnrounded).toBeGreaterThan(1e-4);
  } finally {
    await rt.dispose();
  }
});
