import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../src/execute/runtime.js';
import { readActivationConfig } from '../src/execute/simulate/activation-args.js';
import { fakeQuantize } from '../src/execute/simulate/fake-quant.js';
import { CALIBRATION } from './calibrate-refs.js';

/** One case of fake-quant.json (make_simulate_refs.py): compressed-tensors' own output for an input and arguments. */
interface Case {
  readonly name: string;
  readonly args: Record<string, unknown>;
  readonly shape: number[];
  readonly x: number[];
  readonly scale: number[] | null;
  readonly zero_point: number[] | null;
  readonly global_scale: number | null;
  readonly expected: number[];
}

const CASES = JSON.parse(await readFile(join(CALIBRATION, '..', 'simulate', 'fake-quant.json'), 'utf8')) as Case[];

async function run(c: Case): Promise<Float32Array> {
  const config = readActivationConfig({ quantization_config: { config_groups: { g: { targets: ['Linear'], input_activations: c.args } } } })!;
  const g = new GraphBuilder();
  const x = g.input('x', OnnxType.float, c.shape.map((_, i) => `d${i}`));
  const stored = {
    scale: c.scale ? Float32Array.from(c.scale) : undefined,
    zeroPoint: c.zero_point ? Float32Array.from(c.zero_point) : undefined,
    globalScale: c.global_scale ?? undefined,
  };
  g.output(fakeQuantize(g, x, config.groups[0]!.input!, stored), 'y', OnnxType.float, c.shape.map((_, i) => `d${i}`));
  const rt = new GraphRuntime('cpu');
  try {
    const out = await rt.run('fq', () => g.build('fq'), { x: { type: 'float32', data: Float32Array.from(c.x), dims: c.shape } });
    return out.y!.data as Float32Array;
  } finally {
    await rt.dispose();
  }
}

describe("fake quantization matches compressed-tensors' forward bit for bit", () => {
  expect(CASES.length).toBeGreaterThanOrEqual(12);
  for (const c of CASES) {
    test(c.name, async () => {
      const y = await run(c);
      const expected = Float32Array.from(c.expected);
      let diff = 0;
      for (let i = 0; i < y.length; i++) if (y[i] !== expected[i]) diff++;
      expect(diff, `${diff} of ${y.length} values differ`).toBe(0);
      // The case quantizes: some values changed.
      expect(expected.some((v, i) => v !== Math.fround(c.x[i]!))).toBe(true);
    });
  }
});
