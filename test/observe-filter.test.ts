import { describe, expect, test } from 'vitest';
import { enableObservers, observeInput, observesInput, PACKED_MINMAX, unpackMinMax, type Observation } from '../src/execute/forward/observe.js';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';

/** The observer outputs a graph declares for one shared input of q/k/v and one of o_proj under `observation`. */
function outputs(observation: Observation): string[] {
  const g = new GraphBuilder();
  enableObservers(g, observation);
  const x = g.input('x', OnnxType.float, [1, 4, 8]);
  observeInput(g, ['l.q_proj', 'l.k_proj', 'l.v_proj'], x);
  observeInput(g, ['l.o_proj'], x);
  observeInput(g, ['l.key_states'], x);
  const text = Buffer.from(g.build('observers')).toString('latin1');
  return ['min:l.q_proj,l.k_proj,l.v_proj', 'hess:l.q_proj,l.k_proj,l.v_proj', 'min:l.o_proj', 'hess:l.o_proj', 'min:l.key_states', 'max:l.o_proj'].filter((name) => text.includes(name));
}

describe('observers take only the statistics asked for', () => {
  test('every input, unfiltered', () => {
    expect(outputs({ experts: 'all', hessians: true })).toEqual(['min:l.q_proj,l.k_proj,l.v_proj', 'hess:l.q_proj,l.k_proj,l.v_proj', 'min:l.o_proj', 'hess:l.o_proj', 'min:l.key_states', 'max:l.o_proj']);
  });
  test('a shared input is observed when one of its modules is asked for; others not at all', () => {
    expect(outputs({ experts: 'all', hessians: true, observes: (m) => m === 'l.k_proj' })).toEqual(['min:l.q_proj,l.k_proj,l.v_proj', 'hess:l.q_proj,l.k_proj,l.v_proj']);
  });
  test("GPTQ's shape: Hessians of the solved modules, ranges only where the scheme calibrates inputs", () => {
    const ranges = (m: string): boolean => m === 'l.o_proj';
    const solved = (m: string): boolean => m.endsWith('_proj');
    expect(outputs({ experts: 'all', hessians: true, observes: (m) => solved(m) || ranges(m), minmax: ranges })).toEqual(['hess:l.q_proj,l.k_proj,l.v_proj', 'min:l.o_proj', 'hess:l.o_proj', 'max:l.o_proj']);
  });
  test('observesInput follows both filters (what decides whether the rotated keys are read)', () => {
    const g = new GraphBuilder();
    expect(observesInput(g, 'l.key_states')).toBe(false);
    enableObservers(g, { experts: 'all', hessians: true, minmax: (m) => !m.endsWith('_states') });
    expect(observesInput(g, 'l.key_states')).toBe(false);
    expect(observesInput(g, 'l.q_proj')).toBe(true);
    const h = new GraphBuilder();
    enableObservers(h, 'routed');
    expect(observesInput(h, 'l.key_states')).toBe(true);
  });
});

describe('packed min/max statistics', () => {
  const scalar = (v: number): { data: Float32Array } => ({ data: Float32Array.of(v) });
  const data = (...v: number[]): { data: Float32Array } => ({ data: Float32Array.from(v) });

  test('come back as the scalar outputs they stand for, each where it was declared', () => {
    // Declared: a, [min:x max:x], b (not fetched), [min:y max:y], packed.
    const stats = [
      { name: 'min:x', before: 1 },
      { name: 'max:x', before: 1 },
      { name: 'min:y', before: 2 },
      { name: 'max:y', before: 2 },
    ];
    const out = unpackMinMax({ a: data(7), [PACKED_MINMAX]: data(1, 2, 3, 4) }, ['a', 'b', PACKED_MINMAX], stats, scalar);
    expect(out.map(([n, t]) => [n, Array.from(t.data)])).toEqual([
      ['a', [7]],
      ['min:x', [1]],
      ['max:x', [2]],
      ['min:y', [3]],
      ['max:y', [4]],
    ]);
  });

  test('a graph without them returns its outputs as they are; a count that does not match is an error', () => {
    expect(unpackMinMax({ a: data(1) }, ['a'], [], scalar)).toEqual([['a', data(1)]]);
    expect(() => unpackMinMax({ [PACKED_MINMAX]: data(1) }, [PACKED_MINMAX], [], scalar)).toThrow(/1 values for 0 names/);
  });
});
