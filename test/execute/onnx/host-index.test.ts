/**
 * host-index.ts: a loop body's iteration number and a row of a table of the
 * enclosing graph, computed the way that keeps them on the host, have the
 * values of the plain `Unsqueeze(iter)` and `Gather(table, iter)`.
 */
import { expect, test } from 'vitest';
import { GraphBuilder, OnnxType } from '../../../src/execute/onnx/graph-builder.js';
import { hostIndex, hostRow } from '../../../src/execute/onnx/host-index.js';
import { GraphRuntime } from '../../../src/execute/runtime.js';

/** A Loop over the rows of `table [n, 2]` whose body returns, per iteration, the index, the row, and `x` sliced by both. */
function graph(): Uint8Array {
  const g = new GraphBuilder();
  const table = g.input('table', OnnxType.int64, ['n', 2]);
  const x = g.input('x', OnnxType.float, ['m']);
  const body = new GraphBuilder('b_');
  const iter = body.input('b_iter', OnnxType.int64, []);
  const cond = body.input('b_cond', OnnxType.bool, []);
  const index = hostIndex(body, iter);
  const row = hostRow(body, table, index, 2);
  // x[i : i + row[1] − row[0]] padded to 4 values: the host values used as Slice bounds and Pad widths.
  const end = body.op('Add', [index, body.op('Sub', [body.op('Slice', [row, body.i64([1]), body.i64([2])]), body.op('Slice', [row, body.i64([0]), body.i64([1])])])]);
  const part = body.op('Slice', [x, index, end]);
  const padded = body.op('Pad', [part, body.op('Sub', [body.i64([0, 4]), body.op('Concat', [body.i64([0]), body.op('Sub', [end, index])], { axis: 0 })])]);
  body.passOutput(cond, OnnxType.bool, []);
  body.output(index, 'b_index', OnnxType.int64, [1]);
  body.output(row, 'b_row', OnnxType.int64, [2]);
  body.output(padded, 'b_part', OnnxType.float, [4]);
  const trips = g.op('Gather', [g.op('Shape', [table]), g.i64(0)], { axis: 0 });
  const [indices, rows, parts] = g.opMulti('Loop', [trips, g.constRaw(OnnxType.bool, [], Uint8Array.of(1))], 3, { body: { graph: body, name: 'rows' } });
  g.output(indices!, 'indices', OnnxType.int64, ['n', 1]);
  g.output(rows!, 'rows', OnnxType.int64, ['n', 2]);
  g.output(parts!, 'parts', OnnxType.float, ['n', 4]);
  return g.build('host_index');
}

test('the host index and row are the iteration number and the table row', async () => {
  const runtime = new GraphRuntime('cpu');
  try {
    const table = BigInt64Array.of(10n, 12n, 7n, 10n, 0n, 1n);
    const x = Float32Array.from({ length: 8 }, (_, i) => i + 1);
    const out = await runtime.run('host_index', graph, {
      table: { type: 'int64', data: table, dims: [3, 2] },
      x: { type: 'float32', data: x, dims: [8] },
    });
    expect([...(out.indices!.data as BigInt64Array)]).toEqual([0n, 1n, 2n]);
    expect([...(out.rows!.data as BigInt64Array)]).toEqual([10n, 12n, 7n, 10n, 0n, 1n]);
    // Row i spans row[1] − row[0] values of x from i: 2, 3 and 1 of them.
    expect([...(out.parts!.data as Float32Array)]).toEqual([1, 2, 0, 0, 2, 3, 4, 0, 3, 0, 0, 0]);
  } finally {
    await runtime.dispose();
  }
});
