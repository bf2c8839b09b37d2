/**
 * One decoder layer over many calibration batches in a single onnxruntime
 * run: the layer graph becomes the body of an ONNX `Loop` with one
 * iteration per batch, its statistics (Hessians, minima, maxima, routed
 * token counts) loop-carried and combined on the device, its outputs
 * stacked. onnxruntime-node cannot keep a tensor on the GPU between runs,
 * so a run per batch pays for every statistic crossing the bus and being
 * folded in JavaScript once per batch (a 1B layer's Hessians are ~180 MB);
 * looped, they cross once per stack.
 *
 * Batches lie in a {@link HiddenStack}: `[count, rows, H]`, batch `i` in the
 * first `batch·seq` rows of slot `i` (the rest padding), so a layer's output
 * stack is the next layer's input stack with no copy in JavaScript. A model
 * computing in bfloat16 or float16 holds hidden states of that dtype between
 * its layers, so its stacks travel in it (half the bytes over the bus and in
 * host memory, the same values): float16 as onnxruntime's own float16
 * tensors, bfloat16 as bit patterns (uint16), which onnxruntime-node cannot
 * pass; others as float32.
 */
import { bf16Bytes, concatFloat32, concatUint16, f16Bytes, toFloat32 } from '../dtypes.js';
import { decodeBf16Bits, encodeBf16Bits } from '../onnx/bf16-bits.js';
import { GraphBuilder, OnnxType, type Dim, type OnnxElemType, type WeightFeeds } from '../onnx/graph-builder.js';
import { hostIndex, hostRow } from '../onnx/host-index.js';
import type { Feed, RawTensor } from '../runtime.js';
import type { LayerInputs, LayerOptions } from './llama-layer.js';

/** Equal-length sequences of one batch. */
export interface BatchShape {
  readonly batch: number;
  readonly seq: number;
}

/** How a stack holds its values: float32, float16, or bfloat16 bit patterns (uint16). */
export type StackDtype = 'float32' | 'float16' | 'bfloat16';

/** The ONNX type of a stack's elements in graphs. */
export function stackType(dtype: StackDtype): typeof OnnxType.float | typeof OnnxType.float16 | typeof OnnxType.uint16 {
  return dtype === 'bfloat16' ? OnnxType.uint16 : dtype === 'float16' ? OnnxType.float16 : OnnxType.float;
}

/** A stack slot's float32 values in a graph, from its stored elements. */
export function widened(g: GraphBuilder, x: string, dtype: StackDtype): string {
  return dtype === 'bfloat16' ? decodeBf16Bits(g, x) : dtype === 'float16' ? g.op('Cast', [x], { to: OnnxType.float }) : x;
}

/** Float32 values as a stack of `dtype` stores them (rounded to nearest even where they are not of that dtype). */
export function narrowed(g: GraphBuilder, x: string, dtype: StackDtype): string {
  return dtype === 'bfloat16' ? encodeBf16Bits(g, x) : dtype === 'float16' ? g.op('Cast', [x], { to: OnnxType.float16 }) : x;
}

/** Hidden states of several batches in one buffer (see the module comment). */
export interface HiddenStack {
  /** `[batches.length, rows, hidden]` row-major: float32 values, or 16-bit elements (see {@link StackDtype}). */
  readonly data: Float32Array | Uint16Array;
  readonly dtype: StackDtype;
  readonly batches: readonly BatchShape[];
  /** Rows per slot: the largest `batch·seq`. */
  readonly rows: number;
  readonly hidden: number;
}

/** How a statistic output combines across iterations; null for outputs that cannot be looped (per-token values). */
export function combinerOf(name: string): 'Add' | 'Min' | 'Max' | null {
  if (name === 'routed') return 'Add';
  const kind = name.slice(0, Math.max(0, name.indexOf(':')));
  if (kind === 'hess' || kind === 'hessrows' || kind === 'hessall' || kind === 'ehess' || kind === 'xabs' || kind === 'xeabs') return 'Add';
  if (kind === 'min' || kind === 'cmin' || kind === 'emin') return 'Min';
  if (kind === 'max' || kind === 'cmax' || kind === 'emax') return 'Max';
  return null;
}

/** The value a combined statistic starts from. */
function identityOf(combine: 'Add' | 'Min' | 'Max'): number {
  return combine === 'Add' ? 0 : combine === 'Min' ? Infinity : -Infinity;
}

/**
 * A builder that records declared outputs instead of declaring them: the
 * loop wrapper decides which become loop-carried statistics and which the
 * stacked layer output.
 */
export class RecordingBuilder extends GraphBuilder {
  readonly recorded = new Map<string, string>();

  override output(value: string, name: string, _elemType: OnnxElemType, _dims: readonly Dim[] | null): void {
    this.recorded.set(name, value);
  }

  /** Declares a real output of the loop body. */
  declare(value: string, name: string, elemType: OnnxElemType, dims: readonly Dim[] | null): void {
    super.output(value, name, elemType, dims);
  }
}

/** Builds one decoder layer into `into` (the architecture's builder with {@link LayerOptions.into}); false when the layer needs graphs of its own (expert groups). */
export type BuildInto = (into: NonNullable<LayerOptions['into']>) => Promise<boolean>;

/** The looped graph of a layer and the statistic outputs it returns. */
export interface LoopedLayer {
  readonly bytes: Uint8Array;
  readonly statistics: readonly string[];
  /** The graph output of each statistic: its own name, or `stat_<i>` where the graph feeds its weights (names hold the layer index; the graph must not). */
  readonly outputs: readonly string[];
}

/**
 * The looped graph of one layer for stacks of `rows` rows per slot and
 * sequences up to `maxSeq` (see the module comment); null when the layer
 * cannot be looped (it needs graphs of its own, or returns per-token
 * values). Inputs: `stack [n, rows, H]`, `shape [n, 2]` (int64 batch and
 * seq of each slot), `cos`/`sin [maxSeq, d]` and `mask [maxSeq, maxSeq]`
 * (shorter batches read their top-left corner); outputs: every statistic
 * under its own name and, with `keepOutput`, `out [n, rows, H]`.
 * With `feeds`, the layer's weights are graph inputs recorded there and
 * the statistics come out as `stat_<i>` ({@link LoopedLayer.outputs}), so
 * that same-shaped layers build the same bytes.
 */
export async function loopedLayer(build: BuildInto, hidden: number, rows: number, keepOutput: boolean, feeds?: WeightFeeds, dtype: StackDtype = 'float32'): Promise<LoopedLayer | null> {
  const g = new GraphBuilder();
  const body = new RecordingBuilder('lb_');
  if (feeds) {
    g.feedWeights(feeds);
    body.feedWeights(feeds);
    // Fed weights are decoded once per run in the outer graph, not per batch in the body.
    body.hoistInto(g);
  }
  const iter = body.input('lb_iter', OnnxType.int64, []);
  const cond = body.input('lb_cond', OnnxType.bool, []);
  const { inputs, used } = stackSlot(body, iter, hidden, dtype);
  const zero = body.i64([0]);
  if (!(await build({ g: body, inputs, output: 'lb_out' }))) return null;

  const statistics: string[] = [];
  const carried: { name: string; value: string; combine: 'Add' | 'Min' | 'Max' }[] = [];
  for (const [name, value] of body.recorded) {
    if (name === 'lb_out') continue;
    const combine = combinerOf(name);
    if (!combine) return null;
    statistics.push(name);
    carried.push({ name, value, combine });
  }
  const out = body.recorded.get('lb_out');
  if (out === undefined) return null;

  // Body signature: (iter, cond, carried…) → (cond, carried…, slot output).
  // The condition passes through as it came: an Identity would run on the device, and reading it back every iteration
  // would wait for the iteration's kernels, so onnxruntime could not queue the next one ahead of the card.
  body.passOutput(cond, OnnxType.bool, []);
  carried.forEach((c, i) => {
    const prior = body.input(`lb_s${i}`, OnnxType.float, null);
    body.declare(body.op(c.combine, [prior, c.value]), `lb_s${i}_out`, OnnxType.float, null);
  });
  const slotType = stackType(dtype);
  if (keepOutput) {
    const flat = body.op('Reshape', [out, body.i64([-1, hidden])]);
    const padded = body.op('Pad', [flat, body.op('Concat', [zero, zero, body.op('Sub', [body.i64([rows]), used]), zero], { axis: 0 })]);
    body.declare(narrowed(body, padded, dtype), 'lb_slot_out', slotType, [rows, hidden]);
  } else {
    // Statistics only: what follows the last observed input (a dense layer's down_proj product and residual)
    // and the stacked output are not computed, nor the weights only they read decoded.
    body.pruneUnused();
    g.pruneUnused();
  }

  const stack = stackInputs(g, rows, hidden, dtype);
  const trips = g.op('Gather', [g.op('Shape', [stack]), g.i64(0)], { axis: 0 });
  const results = g.opMulti('Loop', [trips, g.constRaw(OnnxType.bool, [], Uint8Array.of(1)), ...carried.map((c) => g.f32(identityOf(c.combine)))], carried.length + (keepOutput ? 1 : 0), {
    body: { graph: body, name: 'layer_loop' },
  });
  const outputs = carried.map((c, i) => (feeds ? `stat_${i}` : c.name));
  carried.forEach((_, i) => g.output(results[i]!, outputs[i]!, OnnxType.float, null));
  if (keepOutput) g.output(results[carried.length]!, 'out', slotType, ['n', rows, hidden]);
  return { bytes: g.build('looped_layer'), statistics, outputs };
}

/**
 * Slot `iter` of a loop body over the graph inputs `stack [n, rows, H]`,
 * `shape [n, 2]` and the position tables `cos`/`sin`/`mask` (see
 * {@link loopedLayer}): its rows reshaped to `[batch, seq, H]` (float32,
 * widened from a 16-bit stack) with the tables' top-left corners for its
 * length, and its row count `[1]`.
 */
export function stackSlot(body: GraphBuilder, iter: string, hidden: number, dtype: StackDtype = 'float32'): { inputs: LayerInputs; used: string } {
  const zero = body.i64([0]);
  // The slot's batch and length on the host, where its shapes are computed (host-index.ts).
  const shape = hostRow(body, 'shape', hostIndex(body, iter), 2);
  const batch = body.op('Slice', [shape, zero, body.i64([1])]);
  const seq = body.op('Slice', [shape, body.i64([1]), body.i64([2])]);
  const used = body.op('Mul', [batch, seq]);
  const slot = body.op('Gather', ['stack', iter], { axis: 0 });
  const rowsUsed = body.op('Slice', [slot, zero, used, zero]);
  const x = body.op('Reshape', [widened(body, rowsUsed, dtype), body.op('Concat', [batch, seq, body.i64([hidden])], { axis: 0 })]);
  const corner = (t: string, axes: number[]): string => body.op('Slice', [t, body.i64(axes.map(() => 0)), axes.length === 1 ? seq : body.op('Concat', [seq, seq], { axis: 0 }), body.i64(axes)]);
  return { inputs: { hidden: x, cos: corner('cos', [0]), sin: corner('sin', [0]), mask: corner('mask', [0, 1]) }, used };
}

/** Declares the graph inputs a {@link stackSlot} body reads: `stack`, `shape` and the position tables. */
export function stackInputs(g: GraphBuilder, rows: number, hidden: number, dtype: StackDtype = 'float32'): string {
  const stack = g.input('stack', stackType(dtype), ['n', rows, hidden]);
  g.input('shape', OnnxType.int64, ['n', 2]);
  g.input('cos', OnnxType.float, ['seq', 'rope']);
  g.input('sin', OnnxType.float, ['seq', 'rope']);
  g.input('mask', OnnxType.float, ['seq', 'seq']);
  return stack;
}

/**
 * Batches stacked into slots of `rows` rows (the largest batch's), padding
 * zeroed; as `dtype` asks, except that values the 16-bit dtype does not
 * hold exactly keep the stack float32 (nothing is rounded here).
 */
export function stackBatches(
  batches: readonly { data: Float32Array; batch: number; seq: number; stored?: { readonly dtype: StackDtype; readonly data: Uint16Array }; storeInto?: (to: Uint16Array, at: number) => void }[],
  hidden: number,
  dtype: StackDtype = 'float32',
): HiddenStack {
  const rows = Math.max(1, ...batches.map((b) => b.batch * b.seq));
  const shapes = batches.map((b) => ({ batch: b.batch, seq: b.seq }));
  if (dtype !== 'float32' && batches.every((b) => b.stored?.dtype === dtype)) {
    // Batches held as the stack's own 16-bit elements (embeddings, outputs of graphs of several layers) go in as they are.
    const bits = new Uint16Array(batches.length * rows * hidden);
    batches.forEach((b, i) => (b.storeInto ? b.storeInto(bits, i * rows * hidden) : bits.set(b.stored!.data.subarray(0, b.batch * b.seq * hidden), i * rows * hidden)));
    return { data: bits, dtype, batches: shapes, rows, hidden };
  }
  const data = new Float32Array(batches.length * rows * hidden);
  batches.forEach((b, i) => data.set(b.data.subarray(0, b.batch * b.seq * hidden), i * rows * hidden));
  if (dtype === 'bfloat16' && bf16Exact(data)) return { data: halves(bf16Bytes(data)), dtype, batches: shapes, rows, hidden };
  if (dtype === 'float16' && f16Exact(data)) return { data: halves(f16Bytes(data)), dtype, batches: shapes, rows, hidden };
  return { data, dtype: 'float32', batches: shapes, rows, hidden };
}

/** Whether every value is a bfloat16 value (its low 16 bits zero). */
function bf16Exact(data: Float32Array): boolean {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0xffff) !== 0) return false;
  return true;
}

/**
 * Whether every value is a float16 value: within its range, and no bits
 * below its precision (10 mantissa bits; multiples of 2^-24 below 2^-14).
 */
function f16Exact(data: Float32Array): boolean {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    const e = (b >>> 23) & 0xff;
    if ((b & 0x7fffffff) === 0 || e === 255) continue;
    const unbiased = e - 127;
    if (unbiased > 15 || unbiased < -24) return false;
    // Bits below float16's step: 13 for normal numbers, more below 2^-14.
    const dropped = unbiased >= -14 ? 13 : 13 + (-14 - unbiased);
    if (((b & 0x7fffff) | 0x800000) & ((1 << dropped) - 1)) return false;
  }
  return true;
}

/** 16-bit elements over `bytes`. */
function halves(bytes: Uint8Array): Uint16Array {
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
}

/** A stack's values as float32 (a copy for a 16-bit stack, else the stack's own buffer). */
export function stackValues(stack: HiddenStack): Float32Array {
  if (stack.dtype === 'float32') return stack.data as Float32Array;
  const d = stack.data as Uint16Array;
  return toFloat32(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), stack.dtype === 'bfloat16' ? 'BF16' : 'F16');
}

/** Stacks' buffers one after another (runs' outputs into one stack). */
export function concatStackData(parts: readonly (Float32Array | Uint16Array)[]): Float32Array | Uint16Array {
  if (parts.length === 1) return parts[0]!;
  return parts.every((p) => p instanceof Float32Array) ? concatFloat32(parts as Float32Array[]) : concatUint16(parts as Uint16Array[]);
}

/**
 * The output tensor of a looped run over `run` (a view into `stack`), in
 * `target`'s elements at the same place as `run`'s in `stack`: a run writes
 * its part of the next stack where its input lay in this one.
 */
export function outputInto(target: Float32Array | Uint16Array, stack: HiddenStack, run: HiddenStack): RawTensor {
  const at = (run.data.byteOffset - stack.data.byteOffset) / stack.data.BYTES_PER_ELEMENT;
  if (run.data.buffer !== stack.data.buffer || !Number.isInteger(at) || at < 0 || at + run.data.length > target.length) throw new RangeError('a run of a stack must be a view into that stack');
  const data = target.subarray(at, at + run.data.length);
  return { type: run.dtype === 'bfloat16' ? 'uint16' : run.dtype, data, dims: [run.batches.length, run.rows, run.hidden] };
}

/**
 * Stacks split so that each holds at most `bytes` of hidden states (at least
 * one slot each); with `lastAlone`, the last batch in a run of its own (whose
 * statistics are then the last batch's, for memoryless observers).
 */
export function splitStack(stack: HiddenStack, bytes: number, lastAlone = false): HiddenStack[] {
  const slot = stack.rows * stack.hidden;
  const per = Math.max(1, Math.floor(bytes / (stack.data.BYTES_PER_ELEMENT * slot)));
  const count = stack.batches.length;
  const end = lastAlone && count > 1 ? count - 1 : count;
  const out: HiddenStack[] = [];
  const take = (i: number, n: number): void => void out.push({ ...stack, data: stack.data.subarray(i * slot, (i + n) * slot), batches: stack.batches.slice(i, i + n) });
  for (let i = 0; i < end; i += per) take(i, Math.min(per, end - i));
  if (end < count) take(end, 1);
  return out;
}

/**
 * Tokens one looped iteration takes at most where consecutive batches of one
 * shape share a slot (see {@link groupSlots}): as many as a joined
 * calibration run (four 2048-token sequences). Each `Loop` iteration costs
 * the device a fixed overhead besides its kernels; a 1B layer pass over
 * 128 slots of one sequence ran 3.8 times slower than the same layer in a
 * graph of four sequences per run (H100).
 */
export const LOOP_SLOT_TOKENS = 8192;

/**
 * `run` with `group` consecutive batches in each slot, or null where that
 * is not the same memory: every batch must have one shape and fill its slot
 * (no padding), and `group` must divide their count. The slots' rows
 * (`[group·batch, seq]`) lie where the batches' did, so only the dims and
 * the shape table change; a sequence attends only to itself either way.
 */
export function groupSlots(run: HiddenStack, group: number): HiddenStack | null {
  const n = run.batches.length;
  if (group <= 1 || n % group !== 0 || !sameFullSlots(run)) return null;
  const { batch, seq } = run.batches[0]!;
  return { ...run, rows: run.rows * group, batches: Array.from({ length: n / group }, () => ({ batch: batch * group, seq })) };
}

/** Whether every batch of `run` has the first one's shape and fills its slot (no padding). */
function sameFullSlots(run: HiddenStack): boolean {
  const first = run.batches[0];
  return first !== undefined && first.batch * first.seq === run.rows && run.batches.every((b) => b.batch === first.batch && b.seq === first.seq);
}

/**
 * How many batches of `run` share a slot: the most, at most `most`, that
 * divides their count and keeps a slot within `tokens` (1: one each).
 */
export function slotGroup(run: HiddenStack, tokens: number, most = Infinity): number {
  if (!sameFullSlots(run)) return 1;
  const n = run.batches.length;
  for (let g = Math.min(n, most, Math.floor(tokens / Math.max(1, run.rows))); g > 1; g--) if (n % g === 0) return g;
  return 1;
}

/** A stack cut into `count` consecutive shares of about equal rows (views, no copy; a share may be empty). */
export function shareStack(stack: HiddenStack, count: number): HiddenStack[] {
  if (count <= 1) return [stack];
  const slot = stack.rows * stack.hidden;
  const total = stack.batches.reduce((n, b) => n + b.batch * b.seq, 0);
  const out: HiddenStack[] = [];
  let start = 0;
  let done = 0;
  for (let d = 0; d < count; d++) {
    let end = start;
    // Batches go to this share until it holds its part of all rows.
    const target = (total * (d + 1)) / count;
    while (end < stack.batches.length && (d === count - 1 || done + (stack.batches[end]!.batch * stack.batches[end]!.seq) / 2 <= target)) {
      done += stack.batches[end]!.batch * stack.batches[end]!.seq;
      end++;
    }
    out.push({ ...stack, data: stack.data.subarray(start * slot, end * slot), batches: stack.batches.slice(start, end) });
    start = end;
  }
  return out;
}

/** The batches of a stack as float32 views into its values (no copy for a float32 stack). */
export function unstack(stack: HiddenStack): { data: Float32Array; batch: number; seq: number }[] {
  const slot = stack.rows * stack.hidden;
  const values = stackValues(stack);
  return stack.batches.map((b, i) => ({ data: values.subarray(i * slot, i * slot + b.batch * b.seq * stack.hidden), batch: b.batch, seq: b.seq }));
}

/** The feeds of a looped layer run for `stack`, with position tables for its longest sequence. */
export function loopFeeds(stack: HiddenStack, tables: Readonly<Record<'cos' | 'sin' | 'mask', Feed>>): Record<string, Feed> {
  const shape = new BigInt64Array(stack.batches.length * 2);
  stack.batches.forEach((b, i) => {
    shape[2 * i] = BigInt(b.batch);
    shape[2 * i + 1] = BigInt(b.seq);
  });
  return {
    stack: { type: stack.dtype === 'bfloat16' ? 'uint16' : stack.dtype, data: stack.data, dims: [stack.batches.length, stack.rows, stack.hidden] },
    shape: { type: 'int64', data: shape, dims: [stack.batches.length, 2] },
    ...tables,
  };
}
