import { describe, expect, test } from 'vitest';
import { enableObservers, observeInput, observesInput, type Observation } from '../src/execute/forward/observe.js';
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
