/**
 * Narrowing a low-precision graph: the same values, in half the bytes.
 *
 * A low-precision graph (precision.ts) keeps its activations as float32
 * tensors holding values of the low dtype: each op computes in float32 and
 * its result is rounded (`Cast` to the low dtype and back). That is the value
 * transformers gets from a bf16 kernel, which computes in float32 inside and
 * rounds once, but on the card every op then reads and writes float32, twice
 * the bytes of the bf16 tensors PyTorch moves. This rewrite keeps such values
 * as tensors of the low dtype wherever that gives the same bits:
 *
 * - a `Cast` to float32 of a low tensor is dropped; the float32 tensor is made
 *   again (the same `Cast`) only before an op that reads float32;
 * - a `Cast` to the low dtype of such a value is the low tensor itself;
 * - `Add`, `Sub` and `Mul` of such values whose result is only rounded run in
 *   the low dtype: the exact sum or product of two bf16 (or fp16) values
 *   rounded once, which is what float32 arithmetic then a rounding gives (a
 *   product of two 8- or 11-bit significands is exact in float32; a sum that
 *   is not is the larger value to within far less than half a low ulp);
 * - ops that only move or select values (`Identity`, `Reshape`, `Transpose`, `Slice`,
 *   `Concat`, `Gather`, `Flatten`, `Neg`, `Abs`, and in float16 `ReduceMin`/`ReduceMax`, which have no
 *   bfloat16 kernel on CUDA) run on the low tensors;
 * - a graph output keeps its float32 tensor, but the graph's own readers of
 *   it (the next layer of a graph of several) read the low tensor it was
 *   made from.
 *
 * `Shape` of such a value reads the low tensor's shape. Everything else
 * (norms' float32 statistics, softmax, sigmoid) reads float32 as before;
 * where a graph hands such an op a low tensor itself (RMSNorm's fused
 * `SimplifiedLayerNormalization`, precision.ts), its result is a low tensor
 * too, and the casts around it go.
 * Only graphs whose MatMuls run natively in the low dtype are narrowed
 * (CUDA). The tests check the moves bit for bit with float16 on the CPU;
 * `test/bench/precision-parity.ts` checks the bf16 arithmetic on the card.
 */
import { OnnxType, type GraphContext, type GraphNode, type OnnxElemType } from '../onnx/graph-builder.js';

/** Element-wise ops that round their exact result once. */
const ROUNDED = new Set(['Add', 'Sub', 'Mul']);

/** Ops whose output values are input values (moved, selected, negated, or their magnitudes): which inputs carry the data. */
const EXACT: Readonly<Record<string, 'all' | 'first'>> = {
  Identity: 'first',
  Neg: 'first',
  Abs: 'first',
  Reshape: 'first',
  Transpose: 'first',
  Slice: 'first',
  Squeeze: 'first',
  Unsqueeze: 'first',
  Expand: 'first',
  Concat: 'all',
  Gather: 'first',
  Flatten: 'first',
  ReduceMin: 'first',
  ReduceMax: 'first',
};

/** Exact ops onnxruntime's CUDA provider has no bfloat16 kernel for (float16 ones it has): they read float32 in a bf16 graph. */
const NO_BF16_KERNEL = new Set(['ReduceMin', 'ReduceMax']);

/** Ops whose first output has their first input's element type. */
const SAME_TYPE = new Set([...ROUNDED, ...Object.keys(EXACT), 'MatMul', 'GroupQueryAttention', 'MultiHeadAttention', 'SimplifiedLayerNormalization']);

function castTo(n: GraphNode): number | undefined {
  return n.opType === 'Cast' && !n.domain ? (n.attrs.to as number) : undefined;
}

/**
 * Rewrites `nodes` of a graph computing in `low` (see the module comment);
 * nodes stay in topological order. `arithmetic` false leaves `Add`, `Sub` and
 * `Mul` in float32: a provider without kernels of the low dtype for them
 * (the CPU's) computes them in float32 and drops the rounding.
 */
export function narrow(nodes: readonly GraphNode[], graph: GraphContext, low: OnnxElemType, arithmetic = true): GraphNode[] {
  const consumers = new Map<string, GraphNode[]>();
  for (const n of nodes) {
    for (const i of n.inputs) {
      if (i === '') continue;
      const readers = consumers.get(i);
      if (readers) readers.push(n);
      else consumers.set(i, [n]);
    }
  }
  /** Node outputs known to be tensors of the low dtype. */
  const lowTensors = new Set<string>();
  const isLow = (x: string): boolean => lowTensors.has(x) || graph.typeOf(x) === low;
  /** float32 values that equal a low tensor, element for element. */
  const twin = new Map<string, string>();
  /** float32 values of {@link twin} whose node is not written yet. */
  const deferred = new Set<string>();
  /** Unrounded float32 results whose only readers round them: the low tensor of their rounding. */
  const roundedAs = new Map<string, string>();
  const rename = new Map<string, string>();
  const out: GraphNode[] = [];

  const makeFloat = (x: string): void => {
    if (!deferred.delete(x)) return;
    out.push({ name: graph.freshNode(), opType: 'Cast', inputs: [twin.get(x)!], outputs: [x], attrs: { to: OnnxType.float }, refs: [] });
  };
  const dataInputs = (n: GraphNode): readonly number[] => (EXACT[n.opType] === 'all' ? n.inputs.map((_, i) => i) : [0]);
  const roundedOnly = (y: string): boolean => {
    const readers = consumers.get(y) ?? [];
    return !graph.pinned.has(y) && readers.length > 0 && readers.every((r) => castTo(r) === low && !graph.pinned.has(r.outputs[0]!));
  };

  for (const original of nodes) {
    const n: GraphNode = { ...original, inputs: original.inputs.map((i) => rename.get(i) ?? i) };
    const y = n.outputs[0]!;
    const to = castTo(n);
    const free = n.outputs.length === 1 && !graph.pinned.has(y);
    if (to === OnnxType.float && free && isLow(n.inputs[0]!)) {
      twin.set(y, n.inputs[0]!);
      deferred.add(y);
      continue;
    }
    if (to === low && free) {
      const x = n.inputs[0]!;
      const same = isLow(x) ? x : (twin.get(x) ?? roundedAs.get(x));
      if (same !== undefined) {
        rename.set(y, same);
        continue;
      }
    }
    if (arithmetic && !n.domain && free && ROUNDED.has(n.opType) && n.inputs.every((i) => twin.has(i)) && roundedOnly(y)) {
      const result = graph.freshValue();
      out.push({ ...n, inputs: n.inputs.map((i) => twin.get(i)!), outputs: [result] });
      lowTensors.add(result);
      roundedAs.set(y, result);
      continue;
    }
    const data = dataInputs(n);
    if (!n.domain && free && n.opType in EXACT && !(low === OnnxType.bfloat16 && NO_BF16_KERNEL.has(n.opType)) && data.every((k) => twin.has(n.inputs[k]!))) {
      const result = graph.freshValue();
      out.push({ ...n, inputs: n.inputs.map((i, k) => (data.includes(k) ? twin.get(i)! : i)), outputs: [result] });
      lowTensors.add(result);
      twin.set(y, result);
      deferred.add(y);
      continue;
    }
    // Shape reads no values: the low tensor has the float32 one's.
    if (n.opType === 'Shape' && !n.domain && twin.has(n.inputs[0]!)) {
      out.push({ ...n, inputs: [twin.get(n.inputs[0]!)!] });
      continue;
    }
    // A graph output made from a low tensor: written as float32, read inside the graph as the low tensor.
    const source = n.opType === 'Identity' && !n.domain ? twin.get(n.inputs[0]!) : undefined;
    for (const i of [...n.inputs, ...n.refs]) makeFloat(i);
    out.push(n);
    if (source !== undefined && n.outputs.length === 1) twin.set(y, source);
    if (to === low || (SAME_TYPE.has(n.opType) && isLow(n.inputs[0]!))) lowTensors.add(y);
  }
  return out;
}
