import { expect, test } from 'vitest';
import { combineExperts, softmaxTopK, type Routing } from '../src/execute/forward/moe.js';
import { rounded, setGraphPrecision, type LowPrecision } from '../src/execute/forward/precision.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../src/execute/runtime.js';

const E = 16;
const N = 37;
const H = 24;
const K = 4;

/** Deterministic values in [-scale, scale) (xorshift32). */
function values(count: number, seed: number, scale: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: count }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32 - 0.5) * 2 * scale;
  });
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
