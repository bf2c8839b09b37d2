/**
 * Looped layer passes shared over several devices run each device's share
 * from a worker thread of its own (onnxruntime-node runs a session on the
 * calling thread, so shares issued from one thread take turns). Workers
 * run built code only (the worker is a .js file), so these run the built
 * model (`npm test` builds first) against the sources' single device; on
 * the CPU the device ordinals are ignored and the shares run on the CPU.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import * as source from '../../src/execute/forward/executor.js';
import type * as workers from '../../src/execute/device-workers.js';
import type * as pipeline from '../../src/execute/pipeline/sequential.js';
import { runSequential as runSequentialHere } from '../../src/execute/pipeline/sequential.js';
import { stackBatches } from '../../src/execute/forward/layer-loop.js';
import { HessianStore } from '../../src/execute/gptq/hessians.js';
import { GraphBuilder, OnnxType } from '../../src/execute/onnx/graph-builder.js';
import type { RawTensor } from '../../src/execute/runtime.js';
import { DATAFREE, unpackModel } from './fixtures.js';
import { relativeError } from '../calibrate-refs.js';

const DIST = fileURLToPath(new URL('../../dist/src/execute/', import.meta.url));
const built = existsSync(join(DIST, 'device-worker.js')) && existsSync(join(DIST, 'forward', 'executor.js'));
const builtExecutor = async (): Promise<typeof source> => (await import(join(DIST, 'forward', 'executor.js'))) as typeof source;
const builtSequential = async (): Promise<typeof pipeline> => (await import(join(DIST, 'pipeline', 'sequential.js'))) as typeof pipeline;
const builtWorkers = async (): Promise<typeof workers> => (await import(join(DIST, 'device-workers.js'))) as typeof workers;

/** Deterministic batches of unequal sizes and lengths below `vocab`. */
function tokenBatches(vocab: number): number[][][] {
  let s = 5;
  const next = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % vocab);
  const batch = (rows: number, seq: number): number[][] => Array.from({ length: rows }, () => Array.from({ length: seq }, next));
  return [batch(2, 16), batch(1, 16), batch(3, 9), batch(1, 24), batch(1, 5)];
}

/** Pass A's Hessians and ranges, folded in the order they come; the layers left unchanged. */
class Recorder implements pipeline.LayerModifier {
  readonly observe = { experts: 'all', hessians: true } as const;
  readonly ranges = new Map<string, number[]>();
  readonly hessians = new Map<string, Float64Array>();
  private store = new HessianStore();
  private names = new Set<string>();

  collect(_layer: number, _run: number, rows: number, calls: number, outputs: Readonly<Record<string, RawTensor>>): void {
    const hess: Record<string, RawTensor> = {};
    for (const [name, t] of Object.entries(outputs)) {
      if (name.startsWith('hess')) {
        hess[name] = t;
        for (const m of name.slice(name.indexOf(':') + 1).split('|')[0]!.split(',')) this.names.add(m);
      } else {
        const v = Array.from(t.data as Float32Array);
        const prior = this.ranges.get(name);
        const pick = /^c?min:/.test(name) ? Math.min : Math.max;
        this.ranges.set(name, prior ? prior.map((p, i) => pick(p, v[i]!)) : v);
      }
    }
    this.store.add(hess, rows, calls);
  }

  async finishLayer(layer: number) {
    for (const m of this.names) {
      const s = this.store.sumOf(m);
      if (s) this.hessians.set(`${layer}/${m}`, Float64Array.from(s.sum));
    }
    this.store = new HessianStore();
    this.names = new Set();
    return { linears: new Map(), vectors: new Map() };
  }
}

describe.skipIf(!built)('looped passes over several devices (built code)', () => {
  test('each share runs in a worker thread of its own: the same outputs, Hessians and ranges as one device in this thread', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const one = await source.ForwardModel.open(dir);
    one.loopLayers = true;
    const batches = tokenBatches(one.config.vocabSize);
    const stack = stackBatches(await one.embed(batches), one.config.hidden);
    const tables = one.positionTables();
    const expected = (await one.runLayerStacked(0, stack, {}, tables, one.weights, true, 1 << 30))!;

    const { ForwardModel } = await builtExecutor();
    const two = await ForwardModel.open(dir);
    two.loopLayers = true;
    two.deviceIds = [0, 1];
    const timings = { ...{ create: 0, run: 0, release: 0, sessions: 0, runs: 0, firstRuns: 0, firstRunCount: 0 }, build: 0 };
    two.timings = timings;
    try {
      const reuse = new Float32Array(stack.data.length).fill(Number.NaN);
      const shared = await two.runLayerStacked(0, stack, {}, tables, two.weights, true, 1 << 30, undefined, reuse);
      // Both shares ran in the workers, into the memory handed back; the caller's stack is still its own.
      expect(two.workerRuns()).toBe(2);
      expect(shared!.data).toBe(reuse);
      expect(reuse).toEqual(expected.data);
      expect(stack.data.length).toBeGreaterThan(0);
      // The workers' runs and sessions count in the model's timings.
      expect(timings.runs).toBe(2);
      expect(timings.sessions).toBe(2);

      const { runSequential } = await builtSequential();
      const single = new Recorder();
      await runSequentialHere(one, batches, single, [], { runBytes: 1 << 30 });
      const spread = new Recorder();
      await runSequential(two, batches, spread, [], { runBytes: 1 << 30 });
      expect(two.workerRuns()).toBeGreaterThan(2);
      expect([...spread.hessians.keys()].sort()).toEqual([...single.hessians.keys()].sort());
      // Float order only: each share's Hessians are summed on its device, then the shares' in batch order.
      for (const [m, h] of single.hessians) expect(relativeError(spread.hessians.get(m)!, h), m).toBeLessThan(1e-6);
      expect(spread.ranges).toEqual(single.ranges);
    } finally {
      await two.releaseRuntimes();
    }
  });

  test("a worker's failure is the run's error, with onnxruntime's reason; the worker serves the next run", async () => {
    const { startDeviceWorker } = await builtWorkers();
    const worker = startDeviceWorker('cpu', undefined, { foldConstants: true })!;
    try {
      const g = new GraphBuilder();
      g.output(g.op('Add', [g.input('x', OnnxType.float, [2]), g.f32([1, 2])]), 'y', OnnxType.float, [2]);
      const bytes = g.build('add');
      await expect(worker.run('add', () => bytes, { x: { type: 'float32', data: new Float32Array(3), dims: [3] } })).rejects.toThrow(/x|dimension|shape/i);
      const x = Float32Array.of(1, 1);
      const { y } = await worker.run('add', () => bytes, { x: { type: 'float32', data: x, dims: [2] } });
      expect(Array.from(y!.data as Float32Array)).toEqual([2, 3]);
      // The feed was copied, not moved: the caller's array is intact.
      expect(Array.from(x)).toEqual([1, 1]);
      // A stopped worker fails later runs as an unavailable runtime (apply reports it as apply-failed), never hangs them.
      await worker.terminate();
      const { RuntimeUnavailableError } = (await import(join(DIST, 'runtime.js'))) as typeof import('../../src/execute/runtime.js');
      await expect(worker.run('add', () => bytes, { x: { type: 'float32', data: x, dims: [2] } })).rejects.toBeInstanceOf(RuntimeUnavailableError);
      await expect(worker.run('add', () => bytes, { x: { type: 'float32', data: x, dims: [2] } })).rejects.toThrow(/^a device worker thread stopped \(exit code \d+\)$/);
    } finally {
      await worker.terminate();
    }
  });
});
