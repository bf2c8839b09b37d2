/**
 * Mixture-of-experts blocks as graph pieces. Every expert runs on every
 * token (one batched MatMul over the stacked experts), and the block output
 * is the routed combination: the per-expert outputs weighted by a dense
 * `[tokens, experts]` routing matrix that is zero outside each token's
 * top-k. This is the calibration rewrite llm-compressor applies with
 * `calibrate_all_experts` (every expert sees every token, the output stays
 * the routed one), and it needs no data-dependent shapes.
 */
import { GraphBuilder, OnnxType, type ModelBytes } from '../onnx/graph-builder.js';
import { observeChannels, observeExperts, type JoinedObserver, type ObserveOption } from './observe.js';
import { silu, weightConst, type Bf16Matrix } from './ops.js';
import type { InputQuantizer } from './input-quantizer.js';
import type { WeightReader } from './weights.js';
import { inMemoryName } from '../weight-source.js';
import { placedExperts } from './expert-groups.js';
import { graphPrecision, lowOp, matmul, rounded } from './precision.js';
import type { FileBytes } from '../onnx/proto-writer.js';

/** Per-expert Linear names: transformers 5's, or mixtral's original `w1`/`w3`/`w2`. */
export interface ExpertNames {
  readonly gate: string;
  readonly up: string;
  readonly down: string;
}

const STANDARD_NAMES: ExpertNames = { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };
const MIXTRAL_NAMES: ExpertNames = { gate: 'w1', up: 'w3', down: 'w2' };

/** Each expert's input quantizers (served-model simulation), undefined where an input stays unquantized. */
export interface ExpertInputs {
  readonly gate: readonly (InputQuantizer | undefined)[];
  readonly up: readonly (InputQuantizer | undefined)[];
  readonly down: readonly (InputQuantizer | undefined)[];
}

/** Stacked, transposed expert weights: gate/up `[E, H, I]`, down `[E, I, H]`. */
export interface ExpertStack {
  /** Set when a served-model simulation quantizes the experts' inputs. */
  readonly inputs?: ExpertInputs;
  /** Linear names of each expert as transformers 5 names them in memory (for observers), whatever the checkpoint calls them. */
  readonly names: ExpertNames;
  readonly experts: number;
  readonly hidden: number;
  readonly inter: number;
  readonly gate: Float32Array;
  readonly up: Float32Array;
  readonly down: Float32Array;
}

/** Copies a `[rows, cols]` matrix transposed into `out` at `offset`. */
function transposeInto(src: Float32Array, srcOffset: number, rows: number, cols: number, out: Float32Array, offset: number): void {
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[offset + c * rows + r] = src[srcOffset + r * cols + c]!;
}

/** Whether the fused tensor `name` is stored `[E, cols, rows]` rather than the in-memory `[E, rows, cols]`. */
function swapped(w: WeightReader, name: string, rows: number, cols: number): boolean {
  const shape = w.index.tensors.get(name)?.shape;
  return shape !== undefined && shape.length === 3 && !(shape[1] === rows && shape[2] === cols) && shape[1] === cols && shape[2] === rows;
}

/**
 * The fused tensors of MoE module `m`, where the checkpoint fuses its
 * experts: transformers 5's `experts.gate_up_proj` / `experts.down_proj`, or
 * GraniteMoE's `input_linear.weight` / `output_linear.weight`.
 */
function fusedExperts(w: WeightReader, m: string): { readonly gateUp: string; readonly down: string } | undefined {
  const gateUp = [`${m}.experts.gate_up_proj`, `${m}.input_linear.weight`].find((t) => w.has(t));
  if (!gateUp) return undefined;
  return { gateUp, down: gateUp.endsWith('.input_linear.weight') ? `${m}.output_linear.weight` : `${m}.experts.down_proj` };
}

/** The per-expert Linear names MoE module `m`'s checkpoint stores: mixtral's original ones or transformers 5's. */
function storedNames(w: WeightReader, m: string): ExpertNames {
  return w.hasLinear(`${m}.experts.0.w1`) ? MIXTRAL_NAMES : STANDARD_NAMES;
}

/**
 * Reads the experts of MoE module `m` (`model.layers.N.mlp`): the fused
 * transformers 5 tensors `experts.gate_up_proj [E, 2I, H]` and
 * `experts.down_proj [E, H, I]`, or per-expert Linears
 * `experts.<e>.{gate,up,down}_proj` (as quantized checkpoints store them),
 * or mixtral's `experts.<e>.{w1,w3,w2}`, or GraniteMoE's fused
 * `input_linear.weight` / `output_linear.weight`.
 */
export async function readExperts(w: WeightReader, m: string, experts: number, hidden: number, inter: number, start = 0): Promise<ExpertStack> {
  const gate = new Float32Array(experts * hidden * inter);
  const up = new Float32Array(experts * hidden * inter);
  const down = new Float32Array(experts * inter * hidden);
  const slab = hidden * inter;
  const fused = fusedExperts(w, m);
  if (fused) {
    const gu = await w.slice(fused.gateUp, start, experts);
    const dn = await w.slice(fused.down, start, experts);
    // Stored `[E, H, 2I]` / `[E, I, H]` (Qwen3-VL-MoE as published) where memory holds `[E, 2I, H]` / `[E, H, I]`:
    // transformers transposes a fused tensor whose shape differs from the parameter's.
    const guSwapped = swapped(w, fused.gateUp, 2 * inter, hidden);
    const dnSwapped = swapped(w, fused.down, hidden, inter);
    for (let e = 0; e < experts; e++) {
      if (guSwapped) {
        for (let h = 0; h < hidden; h++) {
          const row = e * 2 * slab + h * 2 * inter;
          gate.set(gu.subarray(row, row + inter), e * slab + h * inter);
          up.set(gu.subarray(row + inter, row + 2 * inter), e * slab + h * inter);
        }
      } else {
        transposeInto(gu, e * 2 * slab, inter, hidden, gate, e * slab);
        transposeInto(gu, e * 2 * slab + slab, inter, hidden, up, e * slab);
      }
      if (dnSwapped) down.set(dn.subarray(e * slab, (e + 1) * slab), e * slab);
      else transposeInto(dn, e * slab, hidden, inter, down, e * slab);
    }
    return { names: STANDARD_NAMES, experts, hidden, inter, gate, up, down };
  }
  const names = storedNames(w, m);
  const inputs = { gate: [] as (InputQuantizer | undefined)[], up: [] as (InputQuantizer | undefined)[], down: [] as (InputQuantizer | undefined)[] };
  for (let e = 0; e < experts; e++) {
    const p = `${m}.experts.${start + e}`;
    for (const k of ['gate', 'up', 'down'] as const) inputs[k].push((await w.inputQuantizer(`${p}.${names[k]}`, 'all-tokens'))?.quantize);
    transposeInto((await w.linear(`${p}.${names.gate}`)).data, 0, inter, hidden, gate, e * slab);
    transposeInto((await w.linear(`${p}.${names.up}`)).data, 0, inter, hidden, up, e * slab);
    transposeInto((await w.linear(`${p}.${names.down}`)).data, 0, hidden, inter, down, e * slab);
  }
  const quantized = [...inputs.gate, ...inputs.up, ...inputs.down].some((q) => q !== undefined);
  return { names: STANDARD_NAMES, experts, hidden, inter, gate, up, down, ...(quantized ? { inputs } : {}) };
}

/**
 * The experts' weights as graph values: gate/up `[E, H, I]`, down `[E, I, H]`,
 * float32 (a {@link readExperts} stack) or, from {@link storedExperts}, the
 * checkpoint's bf16 elements.
 */
export interface ExpertWeights {
  readonly gate: string;
  readonly up: string;
  readonly down: string;
  /** Whether the values are bf16 (the low-precision MatMul takes them as they are). */
  readonly bf16: boolean;
}

/** A byte range of a stored tensor: `count` slabs of `slab` bytes from slab `start`. */
function slabs(entry: { readonly file: string; readonly offset: number; readonly byteLength: number; readonly shape: readonly number[] }, start: number, count: number): FileBytes {
  const slab = entry.byteLength / entry.shape[0]!;
  return { file: entry.file, offset: entry.offset + start * slab, byteLength: count * slab };
}

/**
 * Experts `[start, start + count)` of MoE module `m` as the checkpoint stores
 * them, for a graph computing in bf16 on the device: a fused `[E, 2I, H]` /
 * `[E, H, I]` pair as one byte range each (split in the graph), per-expert
 * Linears concatenated in the graph; onnxruntime reads them from the files
 * (external data). Undefined where the float32 stack is needed: another
 * precision or dtype, fed weights, a transposed fused layout, a replaced or
 * quantized expert, simulated input quantization.
 */
export async function storedExperts(g: GraphBuilder, w: WeightReader, m: string, count: number, hidden: number, inter: number, start: number): Promise<ExpertWeights | undefined> {
  const low = graphPrecision(g);
  if (!low?.native || low.dtype !== 'bfloat16' || g.feedsWeights) return undefined;
  const bf16 = OnnxType.bfloat16;
  // Transposed to `[E, in, out]` as a view the MatMul takes (onnxruntime fuses the Transpose into it).
  const transposed = (stored: string): string => g.op('Transpose', [stored], { perm: [0, 2, 1] });
  const fused = fusedExperts(w, m);
  if (fused) {
    const gu = w.index.tensors.get(fused.gateUp);
    const dn = w.index.tensors.get(fused.down);
    const shaped = (e: typeof gu, dims: number[]): boolean => e !== undefined && e.dtype === 'BF16' && e.shape.length === 3 && e.shape[1] === dims[0] && e.shape[2] === dims[1] && e.shape[0]! >= start + count;
    if (!shaped(gu, [2 * inter, hidden]) || !shaped(dn, [hidden, inter])) return undefined;
    const both = g.constRaw(bf16, [count, 2 * inter, hidden], slabs(gu!, start, count));
    const half = (from: number): string => g.op('Slice', [both, g.i64([from]), g.i64([from + inter]), g.i64([1])]);
    return { gate: transposed(half(0)), up: transposed(half(inter)), down: transposed(g.constRaw(bf16, [count, hidden, inter], slabs(dn!, start, count))), bf16: true };
  }
  const names = storedNames(w, m);
  // Every expert checked before any constant joins the graph, so a fallback leaves none behind.
  const found = { gate: [] as Bf16Matrix[], up: [] as Bf16Matrix[], down: [] as Bf16Matrix[] };
  for (let e = 0; e < count; e++) {
    const p = `${m}.experts.${start + e}`;
    for (const k of ['gate', 'up', 'down'] as const) {
      if ((await w.inputQuantizer(`${p}.${names[k]}`, 'all-tokens')) !== undefined) return undefined;
      const stored = await w.linearWeight(`${p}.${names[k]}`);
      const [rows, cols] = k === 'down' ? [hidden, inter] : [inter, hidden];
      if (!('bf16' in stored) || stored.rows !== rows || stored.cols !== cols) return undefined;
      found[k].push(stored);
    }
  }
  const parts = (k: 'gate' | 'up' | 'down'): string[] => found[k].map((b) => g.constRaw(bf16, [1, b.rows, b.cols], b.bf16));
  const stack = (k: 'gate' | 'up' | 'down'): string => transposed(count === 1 ? parts(k)[0]! : g.op('Concat', parts(k), { axis: 0 }));
  return { gate: stack('gate'), up: stack('up'), down: stack('down'), bf16: true };
}

/**
 * Experts `[start, start + count)` of `m` whose gate/up tensor is stored
 * input-major, `experts.gate_up_proj [E, H, 2I]` with `experts.down_proj
 * [E, I, H]` (the `x @ W` orientation of gpt-oss's and Llama 4's), for a
 * graph computing in bf16 on the device: the stored bf16 elements read from
 * the checkpoint's file (external data), gate and up cut out in the graph —
 * every other column from the first and the second (`interleaved`, gpt-oss)
 * or the two halves (Llama 4) — already in the orientation the MatMul takes.
 * Undefined where the float32 stacks are needed (as {@link storedExperts}:
 * another precision or dtype, fed weights, replaced experts, which hide the
 * fused tensors).
 */
export function storedInputMajorExperts(g: GraphBuilder, w: WeightReader, m: string, count: number, hidden: number, inter: number, start: number, interleaved: boolean): ExpertWeights | undefined {
  const low = graphPrecision(g);
  if (!low?.native || low.dtype !== 'bfloat16' || g.feedsWeights) return undefined;
  const entry = (name: string, dims: readonly number[]) => {
    const e = w.has(name) ? w.index.tensors.get(name) : undefined;
    return e !== undefined && e.dtype === 'BF16' && e.shape.length === 3 && e.shape[1] === dims[0] && e.shape[2] === dims[1] && e.shape[0]! >= start + count ? e : undefined;
  };
  const gu = entry(`${m}.experts.gate_up_proj`, [hidden, 2 * inter]);
  const dn = entry(`${m}.experts.down_proj`, [inter, hidden]);
  if (!gu || !dn) return undefined;
  const bf16 = OnnxType.bfloat16;
  const both = g.constRaw(bf16, [count, hidden, 2 * inter], slabs(gu, start, count));
  const columns = (from: number, end: number, step: number): string => g.op('Slice', [both, g.i64([from]), g.i64([end]), g.i64([2]), g.i64([step])]);
  const [gate, up] = interleaved ? [columns(0, 2 * inter, 2), columns(1, 2 * inter, 2)] : [columns(0, inter, 1), columns(inter, 2 * inter, 1)];
  return { gate, up, down: g.constRaw(bf16, [count, inter, hidden], slabs(dn, start, count)), bf16: true };
}

/** Float32 expert stacks (gate/up `[E, H, I]`, down `[E, I, H]`) as graph weights. */
export function inputMajorStack(g: GraphBuilder, s: { readonly gate: Float32Array; readonly up: Float32Array; readonly down: Float32Array }, experts: number, hidden: number, inter: number): ExpertWeights {
  return {
    gate: weightConst(g, s.gate, [experts, hidden, inter]),
    up: weightConst(g, s.up, [experts, hidden, inter]),
    down: weightConst(g, s.down, [experts, inter, hidden]),
    bf16: false,
  };
}

/** A float32 {@link readExperts} stack as graph weights. */
function stackWeights(g: GraphBuilder, s: ExpertStack): ExpertWeights {
  return inputMajorStack(g, s, s.experts, s.hidden, s.inter);
}

/** What {@link allExperts} needs to know of the experts besides their weights. */
type ExpertShape = Pick<ExpertStack, 'names' | 'experts' | 'inputs'>;

/**
 * Every expert's SiLU-gated MLP on every token: `x [N, H]` → `[E, N, H]`.
 * When the graph observes, each expert's gate/up/down inputs are observed
 * (over all tokens or routed ones, see {@link observeExperts}).
 */
export function allExperts(g: GraphBuilder, x: string, s: ExpertShape, weights: ExpertWeights, expertsModule: string, routing: Routing, offset = 0): string {
  const x3 = g.op('Unsqueeze', [x, g.i64([0])]);
  // Served-model simulation: each expert's input quantized with its own arguments and scales, as
  // `[1, N, ·]` so that per-token scales are per token (as the server quantizes an expert's tokens), stacked to `[E, N, ·]`.
  const perExpert = (qs: readonly (InputQuantizer | undefined)[], input: (e: number) => string): string =>
    g.op('Concat', qs.map((q, e) => (q ? q(g, input(e)) : input(e))), { axis: 0 });
  // bf16 weights go to the bf16 MatMul as they are (the same product as the float32 stack's, cast down in the graph).
  const product = (a: string, b: string): string => (weights.bf16 ? g.op('Cast', [g.op('MatMul', [g.op('Cast', [a], { to: OnnxType.bfloat16 }), b])], { to: OnnxType.float }) : matmul(g, a, b, true));
  const gateIn = s.inputs ? perExpert(s.inputs.gate, () => x3) : x3;
  const upIn = s.inputs ? perExpert(s.inputs.up, () => x3) : x3;
  const gate = product(gateIn, weights.gate);
  const up = product(upIn, weights.up);
  const act = lowOp(g, 'Mul', [silu(g, gate), up]);
  observeExperts(g, expertsModule, [s.names.gate, s.names.up], x, false, routing.mask, s.experts, offset);
  observeExperts(g, expertsModule, [s.names.down], act, true, routing.mask, s.experts, offset);
  const downIn = s.inputs ? perExpert(s.inputs.down, (e) => g.op('Slice', [act, g.i64([e]), g.i64([e + 1]), g.i64([0])])) : act;
  return product(downIn, weights.down);
}

/**
 * `Σ_e weights[n, e] · perExpert[e, n, :]`: `[E, N, H]` and the routing's
 * `[N, E]` weights → `[N, H]`. In the low dtype as the experts' `index_add_`
 * into a zero tensor of that dtype: each routed expert's weighted output
 * rounded, then added in expert order, each sum rounded. Where the routing
 * says how many experts a token has at most ({@link Routing.k}), only those
 * rows of `perExpert` are read (gathered in expert order); otherwise every
 * expert's row joins the sum (one not routed adds its zero weight's ±0,
 * which changes no sum).
 */
export function combineExperts(g: GraphBuilder, perExpert: string, routing: Routing, experts?: number): string {
  // Every expert's output times its `[E, N, 1]` weights, each product rounded in the low dtype.
  const everyWeighted = (): string => lowOp(g, 'Mul', [perExpert, g.op('Unsqueeze', [g.op('Transpose', [routing.weights], { perm: [1, 0] }), g.i64([-1])])]);
  if (!graphPrecision(g) || experts === undefined) return g.op('ReduceSum', [everyWeighted(), g.i64([0])], { keepdims: 0 });
  const k = Math.min(routing.k ?? experts, experts);
  let terms: string[];
  if (k < experts) {
    // Each token's routed experts in ascending order: the mask weighted by E − e, largest first.
    const rank = g.f32(Array.from({ length: experts }, (_, e) => experts - e), [experts]);
    const [, ids] = g.opMulti('TopK', [g.op('Mul', [routing.mask, rank]), g.i64([k])], 2, { axis: -1, largest: 1, sorted: 1 });
    // Row e·N + n of perExpert as `[E·N, H]`.
    const tokens = g.op('Gather', [g.op('Shape', [perExpert]), g.i64([1])]);
    const positions = g.op('Unsqueeze', [g.op('Range', [g.i64(0), g.op('Squeeze', [tokens]), g.i64(1)]), g.i64([-1])]);
    const rows = g.op('Add', [g.op('Mul', [ids!, tokens]), positions]);
    const picked = g.op('Gather', [g.op('Flatten', [perExpert], { axis: 2 }), rows], { axis: 0 });
    const weights = g.op('Unsqueeze', [g.op('GatherElements', [routing.weights, ids!], { axis: 1 }), g.i64([-1])]);
    const weighted = lowOp(g, 'Mul', [picked, weights]);
    terms = Array.from({ length: k }, (_, j) => g.op('Gather', [weighted, g.i64(j)], { axis: 1 }));
  } else {
    const weighted = everyWeighted();
    terms = Array.from({ length: experts }, (_, e) => g.op('Gather', [weighted, g.i64(e)], { axis: 0 }));
  }
  return terms.slice(1).reduce((sum, p) => lowOp(g, 'Add', [sum, p]), terms[0]!);
}

/**
 * Dense routing: `[N, E]` routing weights (zero off the top-k) and the 0/1
 * selection mask; `k`, where known, the most experts a token is routed to.
 */
export interface Routing {
  readonly weights: string;
  readonly mask: string;
  readonly k?: number;
}

/** Scatters top-k `values`/`indices` `[N, k]` into dense `[N, E]` matrices shaped like `like` (`k`: their width, where known). */
export function scatterTopK(g: GraphBuilder, like: string, values: string, indices: string, k?: number): Routing {
  const zeros = g.op('Mul', [like, g.f32(0)]);
  const weights = g.op('ScatterElements', [zeros, indices, values], { axis: 1 });
  const ones = g.op('Add', [g.op('Mul', [values, g.f32(0)]), g.f32(1)]);
  return { weights, mask: g.op('ScatterElements', [zeros, indices, ones], { axis: 1 }), ...(k === undefined ? {} : { k }) };
}

/**
 * Softmax top-k router (qwen3_moe, mixtral style): `softmax(logits)`, top-k, optionally renormalized.
 * In the low dtype the router computes in float32 and, unless `keepFloat32` (mixtral, whose experts
 * multiply by the float32 weights before the cast down), its top-k weights are cast down.
 */
export function softmaxTopK(g: GraphBuilder, logits: string, k: number, normalize: boolean, keepFloat32 = false): Routing {
  const probs = g.op('Softmax', [logits], { axis: -1 });
  const [values, indices] = g.opMulti('TopK', [probs, g.i64([k])], 2, { axis: -1, largest: 1, sorted: 1 });
  const v = normalize ? g.op('Div', [values!, g.op('ReduceSum', [values!, g.i64([-1])], { keepdims: 1 })]) : values!;
  return scatterTopK(g, probs, keepFloat32 ? v : rounded(g, v), indices!, k);
}

/** Declares graph output `routed` (or `name`): tokens routed to each expert `[E]` (float counts). */
export function routedCountOutput(g: GraphBuilder, mask: string, experts: number, name = 'routed'): void {
  g.output(g.op('ReduceSum', [mask, g.i64([0])], { keepdims: 0 }), name, OnnxType.float, [experts]);
}

/** `[B, T, H]` → `[B·T, H]`. */
export function flatten(g: GraphBuilder, x: string, hidden: number): string {
  return g.op('Reshape', [x, g.i64([-1, hidden])]);
}

/** Restores `x [N, H]` to the shape of `like` `[B, T, H]`. */
export function unflatten(g: GraphBuilder, x: string, like: string): string {
  return g.op('Reshape', [x, g.op('Shape', [like])]);
}

export { EXPERT_GROUP_BYTES } from './mlp-slices.js';

/**
 * Experts that run as separate graphs, a group at a time, after the layer's
 * main graph: for MoE blocks whose experts do not fit one graph (or memory).
 * The main graph returns `moe_in [N, H]`, `moe_weights [N, E]` and
 * `moe_mask [N, E]`; each group graph maps `moe_in` and its columns of the
 * routing matrices to a partial block output `partial [N, H]`, which the
 * executor adds to the layer output.
 */
export interface ExpertGroups {
  readonly experts: number;
  readonly groupSize: number;
  /** Builds the graph of experts `[start, start + count)`. */
  build(start: number, count: number): Promise<ModelBytes>;
  /**
   * Observers of an input the groups hold slices of (a split MLP's
   * `down_proj` Hessian): the groups then run batch by batch, all resident,
   * so that each batch's slices meet.
   */
  readonly joined?: JoinedObserver;
  /**
   * The partial outputs are slices of one MatMul's sum (a split MLP's
   * `down_proj`): in the low dtype they add up in float32 and are rounded
   * once, instead of each group's output being rounded as it joins.
   */
  readonly slices?: boolean;
}

/** Where the routed experts of an MoE block go, and how big a graph may get. */
export interface ExpertPlacement {
  /** Bound on one graph's expert weights in bytes (float32). */
  readonly groupBytes: number;
  readonly observe?: ObserveOption;
  /** Set when the experts run as separate groups. */
  groups?: ExpertGroups;
}

/**
 * `routed + shared`: a block's routed experts joined by its shared expert(s)
 * (`dims` their shape). In the low dtype the sum is rounded once the routed
 * sum is complete; where the experts run as separate groups that is only
 * after the last group, so the shared output becomes the graph output
 * `moe_shared`, which the executor adds then, and `routed` is returned alone.
 */
export function joinShared(g: GraphBuilder, placement: ExpertPlacement, routed: string, shared: string, dims: readonly (string | number)[]): string {
  if (placement.groups && graphPrecision(g)) {
    g.output(shared, 'moe_shared', OnnxType.float, dims);
    return routed;
  }
  return lowOp(g, 'Add', [routed, shared]);
}

/**
 * The routed expert output `[N, H]` of MoE module `m` for tokens `x [N, H]`:
 * inside this graph when the experts fit `placement.groupBytes`, else zero
 * here, with the inputs of separate expert-group graphs declared as outputs
 * and the groups recorded in `placement`.
 */
export async function routedExperts(
  g: GraphBuilder,
  w: WeightReader,
  m: string,
  x: string,
  routing: Routing,
  experts: number,
  hidden: number,
  inter: number,
  placement: ExpertPlacement,
  // Observed under the names the plan uses, whatever the checkpoint calls the block.
  observedAs = `${inMemoryName(m)}.experts`,
): Promise<string> {
  const perExpert = 3 * hidden * inter * 4;
  // SmoothQuant balances the norm feeding the block against every expert's gate/up: their input is the block input, on every token.
  const gateUp = Array.from({ length: experts }, (_, e) => [`${observedAs}.${e}.gate_proj`, `${observedAs}.${e}.up_proj`]).flat();
  observeChannels(g, gateUp, x);
  return placedExperts(g, x, routing, experts, hidden, perExpert, placement, async (gg, xin, r, start, count) => {
    const stored = await storedExperts(gg, w, m, count, hidden, inter, start);
    if (stored) return combineExperts(gg, allExperts(gg, xin, { names: STANDARD_NAMES, experts: count }, stored, observedAs, r, start), r, count);
    const stack = await readExperts(w, m, count, hidden, inter, start);
    return combineExperts(gg, allExperts(gg, xin, stack, stackWeights(gg, stack), observedAs, r, start), r, count);
  });
}
