import { expect, test } from 'vitest';
import { GraphBuilder, OnnxType } from '../src/execute/onnx/graph-builder.js';
import { ByteArena } from '../src/execute/onnx/proto-writer.js';

function graph(width: number): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input('x', OnnxType.float, [width]);
  g.output(g.op('Add', [x, g.f32(Array.from({ length: width }, (_, i) => i))]), 'y', OnnxType.float, [width]);
  return g;
}

test('graphs written into one arena: the same bytes as fresh ones, in the same memory, the last overwriting the first', () => {
  const arena = new ByteArena();
  const large = graph(1000).build('a', { arena });
  expect(large).toEqual(graph(1000).build('a'));
  const small = graph(10).build('b', { arena });
  expect(small).toEqual(graph(10).build('b'));
  expect(small.buffer).toBe(large.buffer);
  expect(large.subarray(0, small.length)).toEqual(small);
  const larger = graph(5000).build('c', { arena });
  expect(larger).toEqual(graph(5000).build('c'));
  expect(larger.buffer).not.toBe(large.buffer);
});
