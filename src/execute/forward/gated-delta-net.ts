/**
 * Qwen3-Next's gated DeltaNet (`linear_attn`) as one graph piece, computed
 * as transformers' torch fallback computes a prefill
 * (`torch_chunk_gated_delta_rule`): projections `in_proj_qkvz` / `in_proj_ba`
 * split per key-head group, a causal depthwise conv1d with SiLU over
 * q/k/v, L2-normed queries and keys, `beta = sigmoid(b)`, log-decay
 * `g = -exp(A_log)·softplus(a + dt_bias)`, then the gated delta rule in
 * chunks of 64 tokens: the intra-chunk UT system is solved by forward
 * substitution (blocked: the 8 × 8 diagonal blocks inverted row by row,
 * then block by block; every chunk at once), and
 * the recurrent state crosses chunks in an ONNX `Scan`, so one graph serves
 * every sequence length. The output goes through the gated RMSNorm
 * (`norm(x)·silu(z)`, per value head) and `out_proj`.
 */
import { GraphBuilder, OnnxType } from '../onnx/graph-builder.js';
import type { DecoderConfig } from './decoder-config.js';
import { observeInput } from './observe.js';
import { linear, padToMultiple, rmsNorm, silu, sliceLast, weightConst } from './ops.js';
import { lowOp, rounded } from './precision.js';
import type { WeightReader } from './weights.js';

/** transformers' chunk size of the gated delta rule. */
export const DELTA_CHUNK = 64;

/** Dimensions of one gated DeltaNet, from the config (with Qwen3NextConfig's defaults). */
export interface DeltaNetDims {
  readonly keyHeads: number;
  readonly valueHeads: number;
  readonly keyDim: number;
  readonly valueDim: number;
  readonly kernel: number;
}

/** Reads the DeltaNet dimensions of a qwen3_next config. */
export function deltaNetDims(raw: Readonly<Record<string, unknown>>): DeltaNetDims {
  const n = (key: string, fallback: number): number => (typeof raw[key] === 'number' ? (raw[key] as number) : fallback);
  return {
    keyHeads: n('linear_num_key_heads', 16),
    valueHeads: n('linear_num_value_heads', 32),
    keyDim: n('linear_key_head_dim', 128),
    valueDim: n('linear_value_head_dim', 128),
    kernel: n('linear_conv_kernel_dim', 4),
  };
}

/** `x / sqrt(Σx² + 1e-6)` over the last axis (transformers' `l2norm`). */
function l2norm(g: GraphBuilder, x: string): string {
  const sum = g.op('ReduceSum', [g.op('Mul', [x, x]), g.i64([-1])], { keepdims: 1 });
  return g.op('Mul', [x, g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [sum, g.f32(1e-6)])])])]);
}

/** Elements `[start, end)` of axis `axis`. */
function sliceAxis(g: GraphBuilder, x: string, start: number, end: number, axis: number): string {
  return g.op('Slice', [x, g.i64([start]), g.i64([end]), g.i64([axis])]);
}

/**
 * `X` with `A X = B` for the unit lower-triangular `A` whose strictly lower
 * part is that of `a [..., C, C]` (its diagonal and upper part are ignored),
 * `b [..., C, D]`: `x_i = b_i - A[i, :i] · X[:i]`, row by row (5 operators a row).
 */
export function substitute(g: GraphBuilder, a: string, b: string, size: number, first = sliceAxis(g, b, 0, 1, -2)): string {
  let x = first;
  for (let i = 1; i < size; i++) {
    const row = g.op('Slice', [a, g.i64([i, 0]), g.i64([i + 1, i]), g.i64([-2, -1])]);
    const xi = g.op('Sub', [sliceAxis(g, b, i, i + 1, -2), g.op('MatMul', [row, x])]);
    x = g.op('Concat', [x, xi], { axis: -2 });
  }
  return x;
}

/** Rows per block of {@link solveUnitLower}'s blocked substitution. */
const SOLVE_BLOCK = 8;

/**
 * {@link substitute} for `a [B, H, n, C, C]`, `b [B, H, n, C, D]`, blocked as
 * LAPACK's triangular solves are: the inverses of the diagonal `8 × 8`
 * blocks, all at once by substitution, then block by block
 * `X_j = D_j⁻¹ (B_j − A[j, :j] · X[:j])`. The same solution, in about 90
 * operators instead of 5 a row (315 for a 64-token chunk): a DeltaNet's
 * share of a graph's nodes, which onnxruntime's session creation and every
 * run pay per node, falls to a third.
 */
export function solveUnitLower(g: GraphBuilder, a: string, b: string, size: number): string {
  const s = SOLVE_BLOCK;
  // QUANTC_DELTA_SOLVE=rows: the row-by-row solve, for comparisons.
  if (size % s !== 0 || size <= s || process.env.QUANTC_DELTA_SOLVE === 'rows') return substitute(g, a, b, size);
  const nb = size / s;
  // Diagonal blocks [B, H, n, nb, s, s]: the (j, j) blocks of the [nb, nb] grid of blocks.
  const grid = g.op('Transpose', [g.op('Reshape', [a, g.i64([0, 0, 0, nb, s, nb, s])])], { perm: [0, 1, 2, 3, 5, 4, 6] });
  const diagonal = g.op('Gather', [g.op('Reshape', [grid, g.i64([0, 0, 0, nb * nb, s, s])]), g.i64(Array.from({ length: nb }, (_, j) => j * (nb + 1)))], { axis: 3 });
  // The inverses by substitution on the identity's rows. The first row, e₀, is made from the blocks' own
  // first rows (times zero) so that its shape, and every shape after it, is one onnxruntime's planner knows:
  // it reuses no buffer of unknown shape (an identity expanded to a computed shape would be one).
  const eye = g.f32(Array.from({ length: s * s }, (_, k) => (k % (s + 1) === 0 ? 1 : 0)), [s, s]);
  const first = g.op('Add', [g.op('Mul', [sliceAxis(g, diagonal, 0, 1, -2), g.f32(0)]), sliceAxis(g, eye, 0, 1, -2)]);
  const inverses = substitute(g, diagonal, eye, s, first);
  const inverse = (j: number): string => g.op('Gather', [inverses, g.i64(j)], { axis: 3 });
  let x = g.op('MatMul', [inverse(0), sliceAxis(g, b, 0, s, -2)]);
  for (let j = 1; j < nb; j++) {
    const coupling = g.op('Slice', [a, g.i64([j * s, 0]), g.i64([(j + 1) * s, j * s]), g.i64([-2, -1])]);
    const rest = g.op('Sub', [sliceAxis(g, b, j * s, (j + 1) * s, -2), g.op('MatMul', [coupling, x])]);
    x = g.op('Concat', [x, g.op('MatMul', [inverse(j), rest])], { axis: -2 });
  }
  return x;
}

/**
 * The chunk-to-chunk recurrence as a Scan body: state `S [B, H, dk, dv]`;
 * per chunk `v' = v - kc·S`, `out = q·S + intra·v'`, `S ← S·decay + kᵀ·v'`.
 */
function chunkScanBody(dk: number, dv: number): GraphBuilder {
  const b = new GraphBuilder('scan_');
  const s = b.input('state', OnnxType.float, ['batch', 'heads', dk, dv]);
  const values = b.input('values', OnnxType.float, ['batch', 'heads', 'chunk', dv]);
  const kCum = b.input('k_cumdecay', OnnxType.float, ['batch', 'heads', 'chunk', dk]);
  const q = b.input('query', OnnxType.float, ['batch', 'heads', 'chunk', dk]);
  const intra = b.input('intra', OnnxType.float, ['batch', 'heads', 'chunk', 'chunk']);
  const k = b.input('key', OnnxType.float, ['batch', 'heads', 'chunk', dk]);
  const decay = b.input('decay', OnnxType.float, ['batch', 'heads', 1, 1]);
  const vNew = b.op('Sub', [values, b.op('MatMul', [kCum, s])]);
  const out = b.op('Add', [b.op('MatMul', [q, s]), b.op('MatMul', [intra, vNew])]);
  const next = b.op('Add', [b.op('Mul', [s, decay]), b.op('MatMul', [b.op('Transpose', [k], { perm: [0, 1, 3, 2] }), vNew])]);
  b.output(next, 'state_out', OnnxType.float, ['batch', 'heads', dk, dv]);
  b.output(out, 'out', OnnxType.float, ['batch', 'heads', 'chunk', dv]);
  return b;
}

/**
 * The chunked gated delta rule on `q`, `k` `[B, H, T, dk]` (L2-normed here),
 * `v [B, H, T, dv]`, `beta` and log-decay `decay` `[B, H, T]`; returns
 * `[B, H, T, dv]`. In the low dtype as transformers' torch fallback: its
 * inputs upcast to float32, every step in float32, the output cast back
 * down once. `chunks`, where the graph has it, is the fed `[⌈T/64⌉]`
 * chunk index (llama-layer.ts: LayerInputs.chunks).
 */
export function chunkGatedDeltaRule(g: GraphBuilder, query: string, key: string, value: string, beta: string, decay: string, dk: number, dv: number, chunks?: string): string {
  const c = DELTA_CHUNK;
  const q0 = g.op('Mul', [l2norm(g, query), g.f32(dk ** -0.5)]);
  const k0 = l2norm(g, key);
  // The sequence padded to whole chunks.
  const seq = g.op('Shape', [query], { start: 2, end: 3 });
  const [q, k, v, bt, dc] = [q0, k0, value, beta, decay].map((x) => padToMultiple(g, x, c));
  const betaCol = g.op('Unsqueeze', [bt!, g.i64([-1])]);
  // Indexed by `chunks` the chunk count gets a symbolic dim: onnxruntime's allocation planner reuses no buffer of
  // unknown shape and scans every freed one at each allocation, so the solve's ~300 such values a layer made a
  // graph's creation grow with the square of its layers (22.6 s for 22 layers on an H100).
  const byChunk = (x: string): string => (chunks ? g.op('Gather', [x, chunks], { axis: 2 }) : x);
  const chunked = (x: string, d: number): string => byChunk(g.op('Reshape', [x, g.i64([0, 0, -1, c, d])]));
  const vBeta = chunked(g.op('Mul', [v!, betaCol]), dv);
  const kBeta = chunked(g.op('Mul', [k!, betaCol]), dk);
  const qc = chunked(q!, dk);
  const kc = chunked(k!, dk);
  // torch's CPU cumsum accumulates float32 in double: the log-decays reach thousands, where float32
  // accumulation alone would move exp(cum_i - cum_j) by 1e-4.
  const chunkDecays = g.op('Cast', [byChunk(g.op('Reshape', [dc!, g.i64([0, 0, -1, c])]))], { to: OnnxType.double });
  const cum = g.op('Cast', [g.op('CumSum', [chunkDecays, g.i64(3)])], { to: OnnxType.float });
  // Pairwise decays exp(cum_i - cum_j), zero above the diagonal.
  const upper = new Uint8Array(c * c);
  for (let i = 0; i < c; i++) for (let j = i + 1; j < c; j++) upper[i * c + j] = 1;
  const diff = g.op('Sub', [g.op('Unsqueeze', [cum, g.i64([4])]), g.op('Unsqueeze', [cum, g.i64([3])])]);
  const pairwise = g.op('Exp', [g.op('Where', [g.constRaw(OnnxType.bool, [c, c], upper), g.f32(-Infinity), diff])]);
  const kT = g.op('Transpose', [kc], { perm: [0, 1, 2, 4, 3] });
  const ut = g.op('Mul', [g.op('MatMul', [kBeta, kT]), pairwise]);
  const intra = g.op('Mul', [g.op('MatMul', [qc, kT]), pairwise]);
  const expCum = g.op('Unsqueeze', [g.op('Exp', [cum]), g.i64([-1])]);
  const solved = solveUnitLower(g, ut, g.op('Concat', [vBeta, g.op('Mul', [kBeta, expCum])], { axis: -1 }), c);
  const values = sliceLast(g, solved, 0, dv);
  const kCumdecay = sliceLast(g, solved, dv, dv + dk);
  const last = sliceAxis(g, cum, c - 1, c, 3);
  const qDecayed = g.op('Mul', [qc, expCum]);
  const kDecayed = g.op('Mul', [kc, g.op('Unsqueeze', [g.op('Exp', [g.op('Sub', [last, cum])]), g.i64([-1])])]);
  const chunkDecay = g.op('Unsqueeze', [g.op('Exp', [last]), g.i64([-1])]);
  // The recurrent state starts at zero: [B, H, dk, dv].
  const stateShape = g.op('Concat', [g.op('Shape', [query], { start: 0, end: 2 }), g.i64([dk, dv])], { axis: 0 });
  const state = g.op('Expand', [g.f32(0), stateShape]);
  const [, outs] = g.opMulti('Scan', [state, values, kCumdecay, qDecayed, intra, kDecayed, chunkDecay], 2, {
    body: { graph: chunkScanBody(dk, dv), name: 'delta_chunk' },
    num_scan_inputs: 6,
    scan_input_axes: [2, 2, 2, 2, 2, 2],
    scan_output_axes: [2],
  });
  const flat = g.op('Reshape', [outs!, g.i64([0, 0, -1, dv])]);
  return rounded(g, g.op('Slice', [flat, g.i64([0]), seq, g.i64([2])]));
}

/** The gated DeltaNet `m` (`model.layers.N.linear_attn`) on normed input `h [B, T, H]`; returns the out_proj output. */
export async function gatedDeltaNet(g: GraphBuilder, w: WeightReader, cfg: DecoderConfig, raw: Readonly<Record<string, unknown>>, m: string, h: string, chunks?: string): Promise<string> {
  const { keyHeads: nk, valueHeads: nv, keyDim: dk, valueDim: dv, kernel } = deltaNetDims(raw);
  const r = nv / nk;
  const keys = nk * dk;
  const values = nv * dv;
  const convDim = 2 * keys + values;
  observeInput(g, [`${m}.in_proj_qkvz`, `${m}.in_proj_ba`], h);
  // Per key head: [q (dk), k (dk), v (r·dv), z (r·dv)] and [b (r), a (r)].
  const qkvz = g.op('Reshape', [linear(g, h, await w.linearWeight(`${m}.in_proj_qkvz`)), g.i64([0, 0, nk, 2 * dk + 2 * r * dv])]);
  const part = (start: number, end: number, shape: number[]): string => g.op('Reshape', [sliceLast(g, qkvz, start, end), g.i64(shape)]);
  const mixed = g.op('Concat', [part(0, dk, [0, 0, keys]), part(dk, 2 * dk, [0, 0, keys]), part(2 * dk, 2 * dk + r * dv, [0, 0, values])], { axis: -1 });
  const z = part(2 * dk + r * dv, 2 * dk + 2 * r * dv, [0, 0, nv, dv]);
  const ba = g.op('Reshape', [linear(g, h, await w.linearWeight(`${m}.in_proj_ba`)), g.i64([0, 0, nk, 2 * r])]);
  const b = g.op('Reshape', [sliceLast(g, ba, 0, r), g.i64([0, 0, nv])]);
  const a = g.op('Reshape', [sliceLast(g, ba, r, 2 * r), g.i64([0, 0, nv])]);

  // Causal depthwise conv1d (left padding kernel-1), then SiLU; in the low dtype each rounded (conv1d accumulates in float32).
  const convWeight = weightConst(g, await w.vector(`${m}.conv1d.weight`), [convDim, 1, kernel]);
  const conv = rounded(g, g.op('Conv', [g.op('Transpose', [mixed], { perm: [0, 2, 1] }), convWeight], { group: convDim, kernel_shape: [kernel], pads: [kernel - 1, 0] }));
  const act = g.op('Transpose', [silu(g, conv)], { perm: [0, 2, 1] });
  const heads = (x: string, n: number, d: number): string => g.op('Reshape', [x, g.i64([0, 0, n, d])]);
  let q = heads(sliceLast(g, act, 0, keys), nk, dk);
  let k = heads(sliceLast(g, act, keys, 2 * keys), nk, dk);
  const v = heads(sliceLast(g, act, 2 * keys, convDim), nv, dv);

  const beta = lowOp(g, 'Sigmoid', [b]);
  // The log-decay is float32 whatever the model's dtype (`a.float()`, `A_log.float()`).
  const negA = (await w.vector(`${m}.A_log`)).map((x) => -Math.fround(Math.exp(x)));
  const decay = g.op('Mul', [weightConst(g, negA, [nv]), g.op('Softplus', [g.op('Add', [a, weightConst(g, await w.vector(`${m}.dt_bias`), [nv])])])]);
  if (r > 1) {
    // repeat_interleave over heads: value head i reads key head ⌊i / r⌋.
    const repeat = (x: string): string => g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [x, g.i64([3])]), g.i64([1, 1, 1, r, 1])]), g.i64([0, 0, nv, dk])]);
    q = repeat(q);
    k = repeat(k);
  }
  const headsFirst = (x: string): string => g.op('Transpose', [x], { perm: [0, 2, 1, 3] });
  const core = chunkGatedDeltaRule(
    g,
    headsFirst(q),
    headsFirst(k),
    headsFirst(v),
    g.op('Transpose', [beta], { perm: [0, 2, 1] }),
    g.op('Transpose', [decay], { perm: [0, 2, 1] }),
    dk,
    dv,
    chunks,
  );
  // RMSNormGated: the weighted norm in the low dtype times `silu(z.float())` in float32, cast down once.
  const gateF32 = g.op('Mul', [z, g.op('Sigmoid', [z])]);
  const normed = lowOp(g, 'Mul', [rmsNorm(g, headsFirst(core), await w.vector(`${m}.norm.weight`), cfg.eps), gateF32]);
  const out = g.op('Reshape', [normed, g.i64([0, 0, values])]);
  observeInput(g, [`${m}.out_proj`], out);
  return linear(g, out, await w.linearWeight(`${m}.out_proj`));
}
