/**
 * The GPTQ solve as onnxruntime graphs. onnxruntime has no Cholesky and no
 * triangular solve, so both are written as `Loop`s of plain tensor
 * operators: the O(K³) work runs as MatMul/Gemm on whole panels, the
 * sequential parts as inner loops of vector operators, and JavaScript only
 * prepares inputs and reads results. Shapes stay symbolic, so one session
 * per quantization kind serves every weight shape of a model.
 */
import { GraphBuilder, OnnxType } from '../onnx/graph-builder.js';
import { hostIndex } from '../onnx/host-index.js';
import type { KernelKind, WeightDtype } from '../rtn/weight-kernel.js';

/** "Until the start" for a Slice with step −1 (clamped by onnxruntime). */
const TO_START = -(2 ** 62);
/** "Until the end" for a Slice. */
const TO_END = 2 ** 62;

/** `x` with a new axis of size 1 at `axis`. */
function unsqueeze(g: GraphBuilder, x: string, axis: number): string {
  return g.op('Unsqueeze', [x, g.i64([axis])]);
}

/**
 * The body of the panel factorization: step `j` of an unblocked right-looking
 * Cholesky of the `[E, b, b]` diagonal blocks `A` (rank-1 downdate by column
 * `v` of `L`), applying the same elimination to `X` so that `X` ends as
 * `L⁻¹`: with `L = C₀C₁⋯` (Cⱼ the identity with column j replaced by `v`),
 * `Cⱼ⁻¹X = X + ((eⱼ − v)/Lⱼⱼ) ⊗ X[j, :]`. `ok [E]` turns false at a pivot
 * that is not positive (or NaN).
 */
function panelBody(b: number): GraphBuilder {
  const g = new GraphBuilder('pf_');
  const j = g.input('j', OnnxType.int64, []);
  const cond = g.input('cond', OnnxType.bool, []);
  const a = g.input('a', OnnxType.float, ['e', b, b]);
  const x = g.input('x', OnnxType.float, ['e', b, b]);
  const ok = g.input('ok', OnnxType.bool, ['e']);
  const eye = new Float32Array(b * b);
  const lower = new Float32Array(b * b);
  for (let i = 0; i < b; i++) {
    eye[i * b + i] = 1;
    for (let r = i; r < b; r++) lower[i * b + r] = 1;
  }
  const aj = g.op('Gather', [a, j], { axis: 1 });
  const d = g.op('Gather', [aj, j], { axis: 1 });
  const okNext = g.op('And', [ok, g.op('Greater', [d, g.f32(0)])]);
  const l = unsqueeze(g, g.op('Sqrt', [d]), 1);
  // Row j of the symmetric A is its column j; entries above the pivot are masked (rounding leaves dust there).
  const v = g.op('Div', [g.op('Mul', [aj, g.op('Gather', [g.f32([...lower], [b, b]), j], { axis: 0 })]), l]);
  const aNext = g.op('Sub', [a, g.op('Mul', [unsqueeze(g, v, 2), unsqueeze(g, v, 1)])]);
  const e = g.op('Gather', [g.f32([...eye], [b, b]), j], { axis: 0 });
  const xr = g.op('Gather', [x, j], { axis: 1 });
  const xNext = g.op('Add', [x, g.op('Mul', [unsqueeze(g, g.op('Div', [g.op('Sub', [e, v]), l]), 2), unsqueeze(g, xr, 1)])]);
  g.passOutput(cond, OnnxType.bool, []);
  g.output(aNext, 'a_out', OnnxType.float, ['e', b, b]);
  g.output(xNext, 'x_out', OnnxType.float, ['e', b, b]);
  g.output(okNext, 'ok_out', OnnxType.bool, ['e']);
  g.output(v, 'v', OnnxType.float, ['e', b]);
  return g;
}

/** `x` with the last two axes swapped (a batch of transposes). */
function swap(g: GraphBuilder, x: string): string {
  return g.op('Transpose', [x], { perm: [0, 2, 1] });
}

/**
 * One panel of the blocked right-looking Cholesky: carried trailing matrices
 * `T [E, m, m]` (shrinking by `b` per panel); factors their `[b, b]` corners
 * with {@link panelBody}, solves the panel below (`L21 = A21·L11⁻ᵀ`) and
 * downdates the rest (`T ← A22 − L21·L21ᵀ`). Scan outputs: the panel's
 * columns of `L` padded to `[E, n, b]`, `L11⁻¹`, and the pivot flags.
 */
function choleskyBody(b: number): GraphBuilder {
  const g = new GraphBuilder('ch_');
  const p = g.input('p', OnnxType.int64, []);
  const cond = g.input('cond', OnnxType.bool, []);
  const t = g.input('t', OnnxType.float, ['e', 'm', 'm']);
  const axes = g.i64([1, 2]);
  const a11 = g.op('Slice', [t, g.i64([0, 0]), g.i64([b, b]), axes]);
  const a21 = g.op('Slice', [t, g.i64([b, 0]), g.i64([TO_END, b]), axes]);
  const a22 = g.op('Slice', [t, g.i64([b, b]), g.i64([TO_END, TO_END]), axes]);
  const eye = new Float32Array(b * b);
  for (let i = 0; i < b; i++) eye[i * b + i] = 1;
  const x0 = g.op('Expand', [g.f32([...eye], [b, b]), g.op('Shape', [a11])]);
  const ok0 = g.op('Expand', [g.constRaw(OnnxType.bool, [], Uint8Array.of(1)), g.op('Shape', [t], { start: 0, end: 1 })]);
  const [, x, ok, vs] = g.opMulti('Loop', [g.i64(b), '', a11, x0, ok0], 4, { body: { graph: panelBody(b), name: 'panel' } });
  // Scan step j holds column j of L11: [b, E, b] → [E, b, b].
  const l11 = g.op('Transpose', [vs!], { perm: [1, 2, 0] });
  const l21 = g.op('MatMul', [a21, swap(g, x!)]);
  const next = g.op('Sub', [a22, g.op('MatMul', [l21, swap(g, l21)])]);
  // Rows above the panel are zero: pad by p·b.
  const above = g.op('Mul', [hostIndex(g, p), g.i64([b])]);
  const panel = g.op('Pad', [g.op('Concat', [l11, l21], { axis: 1 }), g.op('Concat', [g.i64([0]), above, g.i64([0, 0, 0, 0])], { axis: 0 })]);
  g.passOutput(cond, OnnxType.bool, []);
  g.output(next, 't_out', OnnxType.float, ['e', 'm2', 'm2']);
  g.output(panel, 'panel', OnnxType.float, ['e', 'n', b]);
  g.output(x!, 'dinv', OnnxType.float, ['e', b, b]);
  g.output(ok!, 'ok', OnnxType.bool, ['e']);
  return g;
}

/**
 * One row panel `p` (from 1) of `X = L⁻¹` by blocked forward substitution:
 * carried rows `X[:, :i0, :]` (growing by `b`); `X[i0:i1, :] = D⁻¹·(E − L[i0:i1, :i0]·X[:i0, :])`
 * with `D⁻¹` the panel's diagonal-block inverse from the factorization.
 */
function inverseBody(b: number, l: string, dinv: string): GraphBuilder {
  const g = new GraphBuilder('inv_');
  const step = g.input('step', OnnxType.int64, []);
  const cond = g.input('cond', OnnxType.bool, []);
  const xp = g.input('xp', OnnxType.float, ['e', 'i0', 'n']);
  // Index arithmetic on the host (host-index.ts): the width from the carried rows, not from the enclosing graph.
  const n = g.op('Shape', [xp], { start: 2, end: 3 });
  // The first panel starts the loop (no product with zero columns, which CUDA kernels may leave unwritten).
  const p = g.op('Add', [hostIndex(g, step), g.i64([1])]);
  const i0 = g.op('Mul', [p, g.i64([b])]);
  const i1 = g.op('Add', [i0, g.i64([b])]);
  const lrow = g.op('Slice', [l, g.op('Concat', [i0, g.i64([0])], { axis: 0 }), g.op('Concat', [i1, i0], { axis: 0 }), g.i64([1, 2])]);
  const d = g.op('Gather', [dinv, g.op('Squeeze', [p, g.i64([0])])], { axis: 0 });
  const y = g.op('MatMul', [g.op('MatMul', [d, lrow]), xp]);
  const dpad = g.op('Pad', [d, g.op('Concat', [g.i64([0, 0]), i0, g.i64([0, 0]), g.op('Sub', [n, i1])], { axis: 0 })]);
  g.passOutput(cond, OnnxType.bool, []);
  g.output(g.op('Concat', [xp, g.op('Sub', [dpad, y])], { axis: 1 }), 'xp_out', OnnxType.float, ['e', 'i1', 'n']);
  return g;
}

/**
 * The inverse-Hessian factor graph, for a batch of `E` Hessians of up to
 * `k` columns. Inputs: `h [E, k + 1, k + 1]` (each Hessian scaled, in
 * column order, in the top-left corner of its slab, the rest zero),
 * `rows [E·n]` (row `i` of entry `e`'s working matrix is row
 * `rows[e·n + i] − e·(k + 1)` of its slab), `diag [E, n]` (the working
 * matrix's diagonal). The caller lays the working matrix out as
 * `blockdiag(I, J·P·(H + λI)·Pᵀ·J)` (`J` the reversal, `P` the activation
 * order, identity rows pointing at a zero row of the slab), `n` whole
 * `b`-wide panels; it is gathered here. With `J·P(H+λI)Pᵀ·J = L·Lᵀ`, the
 * upper Cholesky factor of `P(H+λI)Pᵀ`'s inverse is `U = J·L⁻¹·J`, the
 * top-left corner of the working factor's inverse reversed in both axes:
 * one Cholesky and one triangular inverse in place of llm-compressor's
 * Cholesky, Cholesky inverse and second Cholesky, the same factor up to
 * float rounding (a positive-diagonal upper factor of a positive definite
 * matrix is unique). Outputs `u [E, k, k]` (an entry with fewer columns in
 * its top-left corner) and `ok [E]` (0 where a pivot was not positive or
 * the factor not finite: that factorization failed).
 */
export function inverseFactorGraph(b: number): Uint8Array {
  const g = new GraphBuilder();
  const h = g.input('h', OnnxType.float, ['e', 's', 's']);
  const rows = g.input('rows', OnnxType.int64, ['en']);
  const diag = g.input('diag', OnnxType.float, ['e', 'n']);
  const batch = g.op('Shape', [h], { start: 0, end: 1 });
  const slab = g.op('Shape', [h], { start: 1, end: 2 });
  const n = g.op('Shape', [diag], { start: 1, end: 2 });
  // Rows, then (H symmetric) rows of the transpose: the working matrices of every entry at once.
  const once = g.op('Reshape', [g.op('Gather', [g.op('Reshape', [h, g.op('Concat', [g.i64([-1]), slab], { axis: 0 })]), rows], { axis: 0 }), g.op('Concat', [batch, n, slab], { axis: 0 })]);
  const both = g.op('Reshape', [g.op('Gather', [g.op('Reshape', [swap(g, once), g.op('Concat', [g.i64([-1]), n], { axis: 0 })]), rows], { axis: 0 }), g.op('Concat', [batch, n, n], { axis: 0 })]);
  const eye = g.op('Cast', [g.op('EyeLike', [g.op('Gather', [both, g.i64(0)], { axis: 0 })])], { to: OnnxType.bool });
  const a = g.op('Where', [eye, unsqueeze(g, diag, 2), both]);
  const panels = g.op('Squeeze', [g.op('Div', [n, g.i64([b])]), g.i64([0])]);
  const [, lp, dinv, oks] = g.opMulti('Loop', [panels, '', a], 4, { body: { graph: choleskyBody(b), name: 'cholesky' } });
  // Panel p holds columns p·b … p·b + b − 1 of L: [P, E, n, b] → [E, n, P·b].
  const l = g.op('Reshape', [g.op('Transpose', [lp!], { perm: [1, 2, 0, 3] }), g.op('Concat', [batch, n, n], { axis: 0 })]);
  const first = g.op('Pad', [g.op('Gather', [dinv!, g.i64(0)], { axis: 0 }), g.op('Concat', [g.i64([0, 0, 0, 0, 0]), g.op('Sub', [n, g.i64([b])])], { axis: 0 })]);
  const x = g.op('Loop', [g.op('Sub', [panels, g.i64(1)]), '', first], { body: { graph: inverseBody(b, l, dinv!), name: 'inverse' } });
  const k = g.op('Sub', [slab, g.i64([1])]);
  const reversed = g.op('Slice', [x, g.i64([-1, -1]), g.i64([TO_START, TO_START]), g.i64([1, 2]), g.i64([-1, -1])]);
  const u = g.op('Slice', [reversed, g.i64([0, 0]), g.op('Concat', [k, k], { axis: 0 }), g.i64([1, 2])]);
  const pivots = g.op('ReduceMin', [g.op('Cast', [oks!], { to: OnnxType.int32 }), g.i64([0])], { keepdims: 0 });
  // x − x is 0 exactly when x is finite (operators every provider runs).
  const finite = g.op('Equal', [g.op('Sub', [u, u]), g.f32(0)]);
  const allFinite = g.op('ReduceMin', [g.op('Cast', [finite], { to: OnnxType.int32 }), g.i64([1, 2])], { keepdims: 0 });
  g.output(u, 'u', OnnxType.float, ['e', 'k', 'k']);
  g.output(g.op('Min', [pivots, allFinite]), 'ok', OnnxType.int32, ['e']);
  return g.build('gptq_inverse_factor');
}

/** What the column loop quantizes to: the weight kind and its fixed arithmetic. */
export interface LoopKind {
  readonly kind: Extract<KernelKind, 'int' | 'fp8' | 'nvfp4'>;
  /** Integer weights: with zero points. */
  readonly asymmetric: boolean;
  /** Integer weights: the code range. */
  readonly qmin: number;
  readonly qmax: number;
  /** The model dtype: dequantized values (and the result) are rounded to it. */
  readonly dtype: WeightDtype;
}

/** The session key of the column loop for `k` and block size `block`. */
export function columnLoopKey(k: LoopKind, block: number): string {
  return `gptq-loop-${k.kind}-${k.asymmetric ? 'asym' : 'sym'}-${k.qmin}-${k.qmax}-${k.dtype}-${block}`;
}

/** Fake quantization of column `w` with per-row scale `s` (NVFP4: the effective scale `s/global`) and zero point `z`. */
function quantize(g: GraphBuilder, k: LoopKind, w: string, s: string, z: string | null): string {
  const narrow = k.dtype === 'BF16' ? OnnxType.bfloat16 : k.dtype === 'F16' ? OnnxType.float16 : null;
  const toDtype = (v: string): string => (narrow === null ? v : g.op('Cast', [g.op('Cast', [v], { to: narrow })], { to: OnnxType.float }));
  const y = g.op('Div', [w, s]);
  switch (k.kind) {
    case 'int': {
      const shifted = z ? g.op('Add', [y, z]) : y;
      // Through int32: Round's −0 becomes the 0 the JavaScript rounding gives (an Add of 0 would not: onnxruntime drops it).
      const q = g.op('Cast', [g.op('Cast', [g.op('Round', [g.op('Clip', [shifted, g.f32(k.qmin), g.f32(k.qmax)])])], { to: OnnxType.int32 })], { to: OnnxType.float });
      return toDtype(g.op('Mul', [z ? g.op('Sub', [q, z]) : q, s]));
    }
    case 'fp8': {
      const q = g.op('Cast', [g.op('Cast', [g.op('Clip', [y, g.f32(-448), g.f32(448)])], { to: OnnxType.float8e4m3fn, saturate: 1 })], { to: OnnxType.float });
      return toDtype(g.op('Mul', [q, s]));
    }
    default: {
      // FP4 E2M1 with compressed-tensors' cast_to_fp4 ties: the magnitude is the sum of the steps passed.
      const x = g.op('Clip', [y, g.f32(-6), g.f32(6)]);
      const a = g.op('Abs', [x]);
      const step = (op: string, t: number, by: number): string => g.op('Mul', [g.op('Cast', [g.op(op, [a, g.f32(t)])], { to: OnnxType.float }), g.f32(by)]);
      const mag = g.op('Sum', [step('Greater', 0.25, 0.5), step('GreaterOrEqual', 0.75, 0.5), step('Greater', 1.25, 0.5), step('GreaterOrEqual', 1.75, 0.5), step('Greater', 2.5, 1), step('GreaterOrEqual', 3.5, 1), step('Greater', 5, 2)]);
      const q = g.op('Where', [g.op('Less', [x, g.f32(0)]), g.op('Neg', [mag]), mag]);
      return g.op('Mul', [q, s]);
    }
  }
}

/**
 * Column `i` of a block: quantize it, its error `e = (w − q)/U[i,i]`, and the
 * rank-1 update of the block's columns `W1 −= U[i, :]ᵀ ⊗ e` (`U` is upper
 * triangular, so the columns before `i` are untouched; column `i` itself is
 * replaced by `q` afterwards). Scan outputs `q` and `e` `[E, 1, R]`. The
 * column is gathered with its axis kept and `U`'s row comes from the block's
 * transpose `hbt [E, w, w]` as a column `[E, w, 1]`, so the arithmetic needs
 * no reshaping: 17 operators a column instead of 21 (on an H100 the solve
 * took the same time either way: docs/gptq.md).
 */
function columnBody(k: LoopKind, hbt: string, sb: string, zb: string | null): GraphBuilder {
  const g = new GraphBuilder('col_');
  const i = g.input('i', OnnxType.int64, []);
  const cond = g.input('cond', OnnxType.bool, []);
  const w1 = g.input('w1', OnnxType.float, ['e', 'w', 'r']);
  const at = unsqueeze(g, i, 0);
  const w = g.op('Gather', [w1, at], { axis: 1 });
  const q = quantize(g, k, w, g.op('Gather', [sb, at], { axis: 1 }), zb ? g.op('Gather', [zb, at], { axis: 1 }) : null);
  const u = g.op('Gather', [hbt, at], { axis: 2 });
  const e = g.op('Div', [g.op('Sub', [w, q]), g.op('Gather', [u, at], { axis: 1 })]);
  g.passOutput(cond, OnnxType.bool, []);
  g.output(g.op('Sub', [w1, g.op('Mul', [u, e])]), 'w1_out', OnnxType.float, ['e', 'w', 'r']);
  g.output(q, 'q', OnnxType.float, ['e', 1, 'r']);
  g.output(e, 'e', OnnxType.float, ['e', 1, 'r']);
  return g;
}

/** Rows `idx [E, w]` of `x [E, G, R]` per batch entry: `[E, w, R]`. */
function gatherRows(g: GraphBuilder, x: string, idx: string): string {
  const shape = g.op('Concat', [g.op('Shape', [idx]), g.op('Shape', [x], { start: 2, end: 3 })], { axis: 0 });
  return g.op('GatherElements', [x, g.op('Expand', [unsqueeze(g, idx, 2), shape])], { axis: 1 });
}

/**
 * One block of `block` columns `[i1, i2)` of the transposed weights
 * `W [E, K, R]` (carried with the per-row loss): the column loop on the
 * block, then llm-compressor's lazy batch update of the columns after it,
 * `W[i2:] −= U[i1:i2, i2:]ᵀ · Err`, as one MatMul.
 */
function blockBody(k: LoopKind, block: number, u: string, s: string, z: string | null, gcol: string): GraphBuilder {
  const g = new GraphBuilder('blk_');
  const b = g.input('b', OnnxType.int64, []);
  const cond = g.input('cond', OnnxType.bool, []);
  const wt = g.input('wt', OnnxType.float, ['e', 'k', 'r']);
  const loss = g.input('loss', OnnxType.float, ['e', 'r']);
  const ax1 = g.i64([1]);
  // Index arithmetic on the host (host-index.ts): the column count from the carried weights, not from the enclosing graph.
  const kk = g.op('Shape', [wt], { start: 1, end: 2 });
  const i1 = g.op('Mul', [hostIndex(g, b), g.i64([block])]);
  const i2 = g.op('Min', [g.op('Add', [i1, g.i64([block])]), kk]);
  const w1 = g.op('Slice', [wt, i1, i2, ax1]);
  const hb = g.op('Slice', [u, g.op('Concat', [i1, i1], { axis: 0 }), g.op('Concat', [i2, i2], { axis: 0 }), g.i64([1, 2])]);
  const groups = g.op('Slice', [gcol, i1, i2, ax1]);
  const sb = gatherRows(g, s, groups);
  const zb = z ? gatherRows(g, z, groups) : null;
  const width = g.op('Squeeze', [g.op('Sub', [i2, i1]), g.i64([0])]);
  const [, qs, errs] = g.opMulti('Loop', [width, '', w1], 3, { body: { graph: columnBody(k, swap(g, hb), sb, zb), name: 'columns' } });
  // Scan step i holds column i: [w, E, 1, R] → [E, w, R].
  const rows = g.op('Concat', [g.op('Shape', [w1], { start: 0, end: 2 }), g.i64([-1])], { axis: 0 });
  const q1 = g.op('Reshape', [g.op('Transpose', [qs!], { perm: [1, 0, 2, 3] }), rows]);
  const err = g.op('Reshape', [g.op('Transpose', [errs!], { perm: [1, 0, 2, 3] }), rows]);
  const lossNext = g.op('Add', [loss, g.op('ReduceSumSquare', [err, ax1], { keepdims: 0 })]);
  const tail = g.op('Slice', [wt, i2, kk, ax1]);
  const ut = g.op('Slice', [u, g.op('Concat', [i1, i2], { axis: 0 }), g.op('Concat', [i2, kk], { axis: 0 }), g.i64([1, 2])]);
  const updated = g.op('Sub', [tail, g.op('MatMul', [swap(g, ut), err])]);
  const head = g.op('Slice', [wt, g.i64([0]), i1, ax1]);
  g.passOutput(cond, OnnxType.bool, []);
  g.output(g.op('Concat', [head, q1, updated], { axis: 1 }), 'wt_out', OnnxType.float, ['e', 'k', 'r']);
  g.output(lossNext, 'loss_out', OnnxType.float, ['e', 'r']);
  return g;
}

/** `x [E, A, B]` with its last axis taken in the order `idx [E, B]` per batch entry. */
function gatherColumns(g: GraphBuilder, x: string, idx: string): string {
  return g.op('GatherElements', [x, g.op('Expand', [unsqueeze(g, idx, 1), g.op('Shape', [x])])], { axis: 2 });
}

/**
 * The GPTQ column loop graph (llm-compressor `quantize_weight` after the
 * factorization, scales fixed up front) for a batch of `E` problems of one
 * shape, each under its own factor. Inputs: `w [E, R, K]` (column order),
 * `u [E, K, K]` (upper factor in permuted order), `perm`/`iperm [E, K]` (the
 * activation order and its inverse), `keep [E, K]` (0 for dead permuted
 * columns), `s [E, G, R]` (scale of group g for each row; NVFP4: `s/global`),
 * `z [E, G, R]` (asymmetric integers), `gcol [E, K]` (the scale group of each
 * permuted column). Outputs `q [E, R, K]`: the dequantized weights in column
 * order, rounded to the model dtype; `loss [E, R]`: Σ e² per row
 * (llm-compressor logs half of it).
 */
export function columnLoopGraph(k: LoopKind, block: number): Uint8Array {
  const g = new GraphBuilder();
  const w = g.input('w', OnnxType.float, ['e', 'r', 'k']);
  const u = g.input('u', OnnxType.float, ['e', 'k', 'k']);
  const perm = g.input('perm', OnnxType.int64, ['e', 'k']);
  const iperm = g.input('iperm', OnnxType.int64, ['e', 'k']);
  const keep = g.input('keep', OnnxType.float, ['e', 'k']);
  const s = g.input('s', OnnxType.float, ['e', 'g', 'r']);
  const z = k.kind === 'int' && k.asymmetric ? g.input('z', OnnxType.float, ['e', 'g', 'r']) : null;
  const gcol = g.input('gcol', OnnxType.int64, ['e', 'k']);
  // Columns as rows: a column is one contiguous row, and a block a contiguous run of them.
  // Dead columns are zeroed (a positive zero, whatever the weight's sign).
  const wt = g.op('Where', [unsqueeze(g, g.op('Cast', [keep], { to: OnnxType.bool }), 2), swap(g, gatherColumns(g, w, perm)), g.f32(0)]);
  const kk = g.op('Shape', [u], { start: 1, end: 2 });
  const blocks = g.op('Squeeze', [g.op('Div', [g.op('Add', [kk, g.i64([block - 1])]), g.i64([block])]), g.i64([0])]);
  const zeros = g.op('Expand', [g.f32(0), g.op('Shape', [w], { start: 0, end: 2 })]);
  const [solved, loss] = g.opMulti('Loop', [blocks, '', wt, zeros], 2, { body: { graph: blockBody(k, block, u, s, z, gcol), name: 'blocks' } });
  const narrow = k.dtype === 'BF16' ? OnnxType.bfloat16 : k.dtype === 'F16' ? OnnxType.float16 : null;
  const back = gatherColumns(g, swap(g, solved!), iperm);
  g.output(narrow === null ? back : g.op('Cast', [g.op('Cast', [back], { to: narrow })], { to: OnnxType.float }), 'q', OnnxType.float, ['e', 'r', 'k']);
  g.output(loss!, 'loss', OnnxType.float, ['e', 'r']);
  return g.build('gptq_column_loop');
}
