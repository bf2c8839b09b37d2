/**
 * Index arithmetic that onnxruntime keeps on the host inside `Loop` bodies.
 *
 * Slice bounds, Reshape shapes, Pad widths and trip counts are read on the
 * host. onnxruntime's CUDA provider places a node on the CPU only when it
 * reads a host value (the output of a `Shape` or `Size`, or of a node already
 * placed there) and otherwise only graph inputs and small initializers: a
 * node reading only a body's iteration number and constants runs on the
 * device, as does one reading a value of the enclosing graph, and its result
 * comes back through a `MemcpyToHost`. That copy waits for every kernel
 * queued before it, so each iteration started only when the card had
 * finished the previous one, and the host's kernel launches stopped
 * overlapping the card's work (up to seven such copies an iteration in the
 * GPTQ column blocks, two to six in AWQ's grid loop, five in the layer
 * passes, before these helpers).
 *
 * What is built here keeps those values on the host: the iteration number
 * goes through a `Size` first, and a row of a table the enclosing graph
 * holds is picked by an int64 `MatMul`, which only the CPU provider runs.
 * Tensors a body indexes with them (`Gather`, `Slice`) stay on the device.
 */
import { GraphBuilder, OnnxType } from './graph-builder.js';

/**
 * Loop body input `iter` (a scalar iteration number) as a `[1]` int64 on the
 * host: `iter · Size(iter)`. The `Size` makes the product a consumer of a host
 * value, so it and the index arithmetic after it stay there.
 */
export function hostIndex(g: GraphBuilder, iter: string): string {
  return g.op('Unsqueeze', [g.op('Mul', [iter, g.op('Size', [iter])]), g.i64([0])]);
}

/**
 * Row `index` (a `[1]` host index, see {@link hostIndex}) of the int64 table
 * `table [n, c]` of the enclosing graph, as a `[c]` int64 on the host. The
 * first node reading the table must run on the CPU, or the table goes to the
 * device and its rows come back through a copy: the CUDA provider has no
 * int64 `MatMul`, so the table is read by products, `table · 0` for the row
 * numbers (their `CumSum`) and a one-hot row times the table for the row.
 * The zeros are made from `index`, which keeps every node here a consumer of
 * a host value; a `Range` would not do, the CUDA provider reads its bounds
 * on the host itself and so keeps it.
 */
export function hostRow(g: GraphBuilder, table: string, index: string, columns: number): string {
  const zeros = g.op('Mul', [g.i64(new Array<number>(columns).fill(0)), index]);
  const rows = g.op('Sub', [g.op('CumSum', [g.op('Add', [g.op('MatMul', [table, zeros]), g.i64([1])]), g.i64(0)]), g.i64([1])]);
  const hot = g.op('Cast', [g.op('Equal', [rows, index])], { to: OnnxType.int64 });
  return g.op('MatMul', [hot, table]);
}
