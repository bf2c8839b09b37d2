/**
 * The gated DeltaNet's intra-chunk solve (`A X = B`, `A` unit lower-triangular
 * from the chunk's decayed key products): blocked as LAPACK's triangular
 * solves are, it must give the row-by-row substitution's solution to float32
 * rounding, also where the keys are nearly parallel and the solution grows,
 * in a third of the operators.
 */
import ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { solveUnitLower, substitute } from '../src/execute/forward/gated-delta-net.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { xorshift32 } from './bench/xorshift.js';

const [B, H, N] = [1, 2, 3];

/** `a [B, H, N, C, C]` as the DeltaNet makes it: `β_i k_i·k_j · exp(g_i − g_j)` below the diagonal (the rest is ignored), keys of `similarity` to one another. */
function chunkSystem(size: number, d: number, similarity: number, seed: number): { a: Float32Array; b: Float32Array } {
  const bits = xorshift32(seed);
  const next = (): number => bits() / 2 ** 32;
  const count = B * H * N;
  const a = new Float32Array(count * size * size);
  const b = new Float32Array(count * size * d);
  const dk = 16;
  for (let m = 0; m < count; m++) {
    const shared = Array.from({ length: dk }, () => next() - 0.5);
    const keys = Array.from({ length: size }, () => {
      const k = shared.map((s) => similarity * s + (1 - similarity) * (next() - 0.5));
      const norm = Math.hypot(...k);
      return k.map((x) => x / norm);
    });
    const beta = keys.map(() => 0.5 + 0.5 * next());
    const g = keys.map((_, i) => -0.02 * i);
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) {
        const dot = keys[i]!.reduce((s, x, t) => s + x * keys[j]![t]!, 0);
        // Above the diagonal the real system holds zeros; any values there must be ignored, so these are not.
        a[(m * size + i) * size + j] = j < i ? beta[i]! * dot * Math.exp(g[i]! - g[j]!) : next() * 7;
      }
      for (let t = 0; t < d; t++) b[(m * size + i) * d + t] = next() - 0.5;
    }
  }
  return { a, b };
}

/** The solution in float64, row by row. */
function reference(a: Float32Array, b: Float32Array, size: number, d: number): Float64Array {
  const x = new Float64Array(b.length);
  for (let m = 0; m < B * H * N; m++) {
    for (let i = 0; i < size; i++) {
      for (let t = 0; t < d; t++) {
        let v = b[(m * size + i) * d + t]!;
        for (let j = 0; j < i; j++) v -= a[(m * size + i) * size + j]! * x[(m * size + j) * d + t]!;
        x[(m * size + i) * d + t] = v;
      }
    }
  }
  return x;
}

/** Runs one solve graph on the CPU; returns the solution and the graph's operator count. */
async function solve(how: typeof solveUnitLower, a: Float32Array, b: Float32Array, size: number, d: number): Promise<{ x: Float32Array; nodes: number }> {
  const g = new GraphBuilder();
  let nodes = 0;
  g.rewriteWith((list) => {
    nodes = list.length;
    return [...list];
  });
  const ai = g.input('a', OnnxType.float, [B, H, 'n', size, size]);
  const bi = g.input('b', OnnxType.float, [B, H, 'n', size, d]);
  g.output(how(g, ai, bi, size), 'x', OnnxType.float, [B, H, 'n', size, d]);
  const session = await ort.InferenceSession.create(g.build('solve'));
  const r = await session.run({ a: new ort.Tensor('float32', a, [B, H, N, size, size]), b: new ort.Tensor('float32', b, [B, H, N, size, d]) });
  await session.release();
  return { x: r.x!.data as Float32Array, nodes };
}

/** Largest error relative to the solution's largest magnitude. */
function error(x: Float32Array, ref: Float64Array): number {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    worst = Math.max(worst, Math.abs(x[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return worst / scale;
}

describe('the DeltaNet chunk solve, blocked against row by row (float32 on the CPU)', () => {
  for (const [similarity, label] of [[0, 'independent keys'], [0.9, 'nearly parallel keys']] as const) {
    test(`64-token chunks, ${label}`, async () => {
      const [size, d] = [64, 5];
      const { a, b } = chunkSystem(size, d, similarity, 7 + similarity * 10);
      const ref = reference(a, b, size, d);
      const rows = await solve(substitute, a, b, size, d);
      const blocked = await solve(solveUnitLower, a, b, size, d);
      expect(error(rows.x, ref)).toBeLessThan(1e-5);
      expect(error(blocked.x, ref)).toBeLessThan(Math.max(1e-6, 4 * error(rows.x, ref)));
      // 5 operators a row before; the blocked solve in under a third of them.
      expect(rows.nodes).toBeGreaterThanOrEqual(5 * (size - 1));
      expect(blocked.nodes).toBeLessThan(rows.nodes / 3);
    });
  }

  test('a chunk that is not a whole number of blocks is solved row by row', async () => {
    const [size, d] = [20, 3];
    const { a, b } = chunkSystem(size, d, 0.5, 3);
    const blocked = await solve(solveUnitLower, a, b, size, d);
    const rows = await solve(substitute, a, b, size, d);
    expect(blocked.nodes).toBe(rows.nodes);
    expect(Array.from(blocked.x)).toEqual(Array.from(rows.x));
  });
});
