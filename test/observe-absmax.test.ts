/**
 * Symmetric static schemes read an input's range only as max(|min|, |max|):
 * their observers reduce |x| once (min = −absmax, max = absmax). Checked
 * here: the graphs' outputs on values of both signs, packed or not; that an
 * input shared with an asymmetric module keeps its true min and max; that a
 * calibration pass gives every symmetric scale bit for bit as before; and
 * which modules a job reads this way.
 */
import { describe, expect, test } from 'vitest';
import { absmaxModules } from '../src/execute/calibrate/calibrate-job.js';
import { calibrate } from '../src/execute/calibrate/calibrate.js';
import { absRange, fp8InputScale, intInputQParams, nvfp4GlobalScale } from '../src/execute/calibrate/observers.js';
import { windows } from '../src/execute/calibrate/perplexity.js';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { enableObservers, finishPackedMinMax, observeInput, packMinMax, parseObserverOutput, unpackMinMax, type Observation } from '../src/execute/forward/observe.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { GraphRuntime, type RawTensor } from '../src/execute/runtime.js';
import type { ApplyJob } from '../src/execute/types.js';
import type { QuantizationArgs } from '../src/ir/types.js';
import { modelWithTokenizer, textRefs } from './calibrate-refs.js';

/**
 * Observer outputs of one graph over `x [2, 3]` (the input of q/k/v) and `−2x` (of o_proj), as read
 * back: `<stat>:<module>` → value, and the names of the outputs they came from.
 */
async function observed(observation: Observation, pack: boolean, x: Float32Array): Promise<{ values: Record<string, number>; names: string[] }> {
  const g = new GraphBuilder();
  enableObservers(g, observation);
  if (pack) packMinMax(g);
  const input = g.input('x', OnnxType.float, [2, 3]);
  observeInput(g, ['l.q_proj', 'l.k_proj'], input);
  observeInput(g, ['l.o_proj'], g.op('Mul', [input, g.f32(-2)]));
  const stats = pack ? finishPackedMinMax(g) : [];
  const bytes = g.build('observers');
  const rt = new GraphRuntime('cpu');
  try {
    const result = await rt.run('observers', () => bytes, { x: { type: 'float32', data: x, dims: [2, 3] } });
    const scalar = (v: number): RawTensor => ({ type: 'float32', data: Float32Array.of(v), dims: [] });
    const outputs = unpackMinMax(result, g.outputList, stats, scalar);
    const values = outputs.flatMap(([name, t]) => parseObserverOutput(name, t.data as Float32Array)).map((v) => [`${v.stat}:${v.module}`, v.value] as const);
    return { values: Object.fromEntries(values), names: outputs.map(([name]) => name) };
  } finally {
    await rt.dispose();
  }
}

describe('observers of symmetric schemes reduce |x| once', () => {
  const x = Float32Array.of(0.5, -3, 1.25, 2, -0.75, 0);
  for (const pack of [false, true]) {
    test(`one max |x| per input, read back as min = −absmax, max = absmax (${pack ? 'packed' : 'an output each'})`, async () => {
      const { values, names } = await observed({ experts: 'all', hessians: false, absmax: () => true }, pack, x);
      expect(names).toEqual(['amax:l.q_proj,l.k_proj', 'amax:l.o_proj']);
      expect(values).toEqual({ 'min:l.q_proj': -3, 'max:l.q_proj': 3, 'min:l.k_proj': -3, 'max:l.k_proj': 3, 'min:l.o_proj': -6, 'max:l.o_proj': 6 });
    });
    test(`an input one asymmetric module reads keeps its min and max (${pack ? 'packed' : 'an output each'})`, async () => {
      const { values, names } = await observed({ experts: 'all', hessians: false, absmax: (m) => m !== 'l.k_proj' }, pack, x);
      expect(names).toEqual(['min:l.q_proj,l.k_proj', 'max:l.q_proj,l.k_proj', 'amax:l.o_proj']);
      expect(values).toEqual({ 'min:l.q_proj': -3, 'max:l.q_proj': 2, 'min:l.k_proj': -3, 'max:l.k_proj': 2, 'min:l.o_proj': -6, 'max:l.o_proj': 6 });
      expect((await observed({ experts: 'all', hessians: false }, pack, x)).values).toMatchObject({ 'min:l.o_proj': -4, 'max:l.o_proj': 6 });
    });
  }
});

describe('a calibration pass with absmax observers', () => {
  for (const name of ['llama', 'qwen3_moe']) {
    test(`${name}: every symmetric scale as with min/max observers, bit for bit`, async () => {
      const refs = await textRefs(name);
      const dir = await modelWithTokenizer(name);
      const batches = windows(refs.text_ids, 32, 2);
      const full = await calibrate(await ForwardModel.open(dir), batches);
      const sym = await calibrate(await ForwardModel.open(dir), batches, true, undefined, { absmax: () => true });
      expect([...sym.inputs.keys()].sort()).toEqual([...full.inputs.keys()].sort());
      let folded = 0;
      for (const [stats, symStats] of [
        [full.inputs, sym.inputs],
        [full.lastBatch, sym.lastBatch],
      ] as const) {
        for (const [key, s] of stats) {
          const t = symStats.get(key)!;
          expect(absRange(t), key).toBe(absRange(s));
          for (const dtype of ['F32', 'BF16'] as const) {
            expect(fp8InputScale(t, dtype), key).toBe(fp8InputScale(s, dtype));
            expect(nvfp4GlobalScale(t, dtype), key).toBe(nvfp4GlobalScale(s, dtype));
            expect(intInputQParams(t, 8, true, dtype), key).toEqual(intInputQParams(s, 8, true, dtype));
          }
          // Experts' statistics come with their routing counts and keep their min and max.
          if (/\.experts\.\d+\./.test(key)) expect(t, key).toEqual(s);
          else if (t.min === -t.max && s.min !== t.min) folded++;
        }
      }
      expect(folded).toBeGreaterThan(0);
    });
  }
});

describe('absmaxModules', () => {
  const args = (symmetric: boolean, type: 'int' | 'float' = 'int'): QuantizationArgs => ({ num_bits: 8, type, symmetric, strategy: 'tensor', dynamic: false }) as QuantizationArgs;
  const job = {
    groups: [
      { name: 'group_0', scheme: { targets: ['re:.*q_proj$'], weights: null, input_activations: args(false) } },
      { name: 'group_1', scheme: { targets: ['re:.*k_proj$'], weights: null, input_activations: args(true) } },
      { name: 'group_2', scheme: { targets: ['re:.*o_proj$'], weights: null, input_activations: args(true, 'float') } },
    ],
    modules: [
      { name: 'l.q_proj', group: 0 },
      { name: 'l.k_proj', group: 1 },
      { name: 'l.o_proj', group: 2 },
    ],
  } as unknown as ApplyJob;
  test('every module but those with asymmetric static integer inputs', () => {
    const absmax = absmaxModules(job);
    expect(['l.q_proj', 'l.k_proj', 'l.o_proj', 'l.self_attn.key_states', 'l.up_proj'].filter(absmax)).toEqual(['l.k_proj', 'l.o_proj', 'l.self_attn.key_states', 'l.up_proj']);
  });
});
