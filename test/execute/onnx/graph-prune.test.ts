/**
 * GraphBuilder.pruneUnused: a graph built from a larger one keeps only the
 * nodes and constants its outputs depend on — through a loop body's
 * outer-scope reads too — and computes the same outputs.
 */
import { describe, expect, test } from 'vitest';
import { GraphBuilder, OnnxType } from '../../../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../../../src/execute/runtime.js';

/** `y = Σ_{i<3} (x + w)` by a Loop whose body reads `x + w` from the outer scope, next to dead work (a large unused constant). */
function graph(prune: boolean): Uint8Array {
  const g = new GraphBuilder();
  if (prune) g.pruneUnused();
  const x = g.input('x', OnnxType.float, [4]);
  const shifted = g.op('Add', [x, g.f32([1, 2, 3, 4])]);
  // Dead: neither output reads these.
  g.op('Mul', [g.op('Relu', [x]), g.f32(new Array<number>(4096).fill(7), [1024, 4])]);
  const body = new GraphBuilder('b_');
  body.input('b_i', OnnxType.int64, []);
  const cond = body.input('b_cond', OnnxType.bool, []);
  const acc = body.input('b_acc', OnnxType.float, [4]);
  body.passOutput(cond, OnnxType.bool, []);
  body.output(body.op('Add', [acc, shifted]), 'b_acc_out', OnnxType.float, [4]);
  const zero = g.op('Mul', [x, g.f32(0)]);
  const [sum] = g.opMulti('Loop', [g.i64(3), g.constRaw(OnnxType.bool, [], Uint8Array.of(1)), zero], 1, { body: { graph: body, name: 'sum' } });
  g.output(sum!, 'y', OnnxType.float, [4]);
  return g.build('prune');
}

describe('GraphBuilder.pruneUnused', () => {
  test('drops the dead nodes and constants, keeps what a loop body reads from the outer scope', async () => {
    const full = graph(false);
    const pruned = graph(true);
    // The unused [1024, 4] constant (16 KiB) is gone.
    expect(full.length - pruned.length).toBeGreaterThan(16000);
    const rt = new GraphRuntime('cpu');
    try {
      const x = { type: 'float32' as const, data: new Float32Array([1, 1, 1, 1]), dims: [4] };
      const a = await rt.run('full', () => full, { x });
      const b = await rt.run('pruned', () => pruned, { x });
      expect(Array.from(b.y!.data as Float32Array)).toEqual([6, 9, 12, 15]);
      expect(Array.from(b.y!.data as Float32Array)).toEqual(Array.from(a.y!.data as Float32Array));
    } finally {
      await rt.dispose();
    }
  });
});

describe('graph inputs', () => {
  test('a model declares only the inputs its nodes read; a loop body keeps every input of its signature', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', OnnxType.float, [2]);
    g.input('unread', OnnxType.float, [1024, 1024]);
    const outer = g.input('outer', OnnxType.float, [2]);
    const body = new GraphBuilder('b_');
    body.input('b_i', OnnxType.int64, []);
    const cond = body.input('b_cond', OnnxType.bool, []);
    const acc = body.input('b_acc', OnnxType.float, [2]);
    // An input the body leaves unread still belongs to its signature.
    body.input('b_unused', OnnxType.float, [2]);
    body.passOutput(cond, OnnxType.bool, []);
    body.output(body.op('Add', [acc, outer]), 'b_acc_out', OnnxType.float, [2]);
    body.output(acc, 'b_unused_out', OnnxType.float, [2]);
    const [sum] = g.opMulti('Loop', [g.i64(2), g.constRaw(OnnxType.bool, [], Uint8Array.of(1)), x, x], 2, { body: { graph: body, name: 'sum' } });
    g.output(sum!, 'y', OnnxType.float, [2]);
    const bytes = g.build('inputs');
    const text = Buffer.from(bytes).toString('latin1');
    expect(text).not.toContain('unread');
    expect(text).toContain('b_unused');
    const rt = new GraphRuntime('cpu');
    // The run feeds what the graph declares: `unread` is left out, read by no one.
    const out = await rt.run('inputs', () => bytes, {
      x: { type: 'float32', data: Float32Array.of(1, 2), dims: [2] },
      outer: { type: 'float32', data: Float32Array.of(10, 20), dims: [2] },
      unread: () => {
        throw new Error('an unread input was made');
      },
    });
    expect([...(out.y!.data as Float32Array)]).toEqual([21, 42]);
    await rt.dispose();
  });
});
