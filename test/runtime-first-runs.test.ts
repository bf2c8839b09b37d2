/**
 * `RuntimeTimings.firstRuns`: the runs that were the first of their session
 * with their input shapes, counted apart from the steady ones.
 */
import { expect, test } from 'vitest';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { emptyRuntimeTimings, GraphRuntime } from '../src/execute/runtime.js';

test('each session counts its first run of each input shape, again once it was released and made anew', async () => {
  const g = new GraphBuilder();
  const x = g.input('x', OnnxType.float, ['n']);
  g.output(g.op('Add', [x, x]), 'y', OnnxType.float, ['n']);
  const model = g.build('double');
  const rt = new GraphRuntime('cpu');
  rt.timings = emptyRuntimeTimings();
  const feed = (n: number) => ({ x: { type: 'float32' as const, data: new Float32Array(n).fill(1), dims: [n] } });
  try {
    for (const n of [4, 4, 8, 4, 8]) await rt.run('a', () => model, feed(n));
    await rt.run('b', () => model, feed(4));
    expect([rt.timings.runs, rt.timings.firstRunCount]).toEqual([6, 3]);
    await rt.dispose();
    await rt.run('a', () => model, feed(4));
    expect([rt.timings.runs, rt.timings.firstRunCount]).toEqual([7, 4]);
    expect(rt.timings.firstRuns).toBeLessThanOrEqual(rt.timings.run);
  } finally {
    await rt.dispose();
  }
});
