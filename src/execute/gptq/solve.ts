/**
 * The GPTQ solve of one weight (llm-compressor `quantize_weight`): dead
 * columns, relative dampening, the upper Cholesky factor of the inverse
 * Hessian, and the blockwise column loop with lazy batch updates, with
 * scales fixed before the loop. Float32 like llm-compressor, blocked so
 * that the `K³` and `R·K²` products run on a {@link GemmEngine}
 * (onnxruntime) while JavaScript does the panels and the column loop inside
 * each block. GPTQ's objective, not its integer codes, is what two valid
 * float orders agree on. graph-solve.ts runs the same solve as onnxruntime
 * graphs (a {@link FactorEngine} for the factorization, and the column
 * loop), sharing the preparation and the qparams defined here.
 */
import { isGroupOrdering } from '../../ir/quant-args.js';
import type { QuantizationArgs } from '../../ir/types.js';
import { dtypeFacts } from '../rtn/qparams.js';
import type { KernelKind, WeightDtype } from '../rtn/weight-kernel.js';
import { jsGemm, type GemmEngine } from './gemm.js';
import { groupStats, quantizeColumn, scaleLayout, weightQparams, type GroupStats, type WeightQparams } from './weight-qparams.js';

/** GPTQModifier's solve settings. */
export interface GptqSettings {
  /** Columns per lazy batch (`block_size`, default 128). */
  readonly blockSize: number;
  /** Dampening as a fraction of the mean Hessian diagonal (`dampening_frac`, default 0.01). */
  readonly dampeningFrac: number;
}

/** One weight to solve. */
export interface GptqProblem {
  /** Row-major `[rows, cols]` weight values (the model-dtype weight, widened). */
  readonly weight: Float32Array;
  readonly rows: number;
  readonly cols: number;
  /** Normalized Hessian `2·Σxxᵀ/n`, `[cols, cols]` row-major (unused when a {@link PreparedHessian} is given). */
  readonly hessian: ArrayLike<number>;
  readonly kind: KernelKind;
  /** Weight quantization args; `actorder` already resolved. */
  readonly args: QuantizationArgs;
  /** The model dtype (scale arithmetic). */
  readonly dtype: WeightDtype;
  /** Statistics of the whole original weight (column order); re-observed in float32 for group actorder. */
  readonly stats: GroupStats;
  /** NVFP4 global scale (shared by fused siblings). */
  readonly globalScale: number | null;
}

/** The solved weight. */
export interface GptqSolution {
  /** Dequantized weight `[rows, cols]`, column order, rounded to the model dtype. */
  readonly weight: Float32Array;
  /** llm-compressor's logged loss: Σ (w − q)² / d² / 2. */
  readonly loss: number;
  /** True when a Cholesky factorization failed and the weight was rounded to nearest (Hinv = I). */
  readonly fellBack: boolean;
  /** The qparams the loop used (group actorder: in permuted grouping, float32). */
  readonly qparams: WeightQparams;
  /** Group actorder only: `weight_g_idx`, the scale group of each original column. */
  readonly gIdx: Int32Array | null;
}

/** Columns per inner sub-block of the GPTQ loop (updates within it run in JavaScript). */
const SUB = 16;

/** Stable argsort of `diag` descending (ties keep column order). */
export function descendingOrder(diag: ArrayLike<number>): Int32Array {
  const idx = Array.from({ length: diag.length }, (_, i) => i);
  idx.sort((a, b) => diag[b]! - diag[a]! || a - b);
  return Int32Array.from(idx);
}

/** In-place lower Cholesky of symmetric `a` `[n, n]` (upper triangle zeroed); false if not positive definite. */
export function choleskyLower(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j]!;
    for (let k = 0; k < j; k++) d -= a[rj + k]! * a[rj + k]!;
    if (!(d > 0)) return false;
    const ljj = Math.sqrt(d);
    a[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j]!;
      for (let k = 0; k < j; k++) s -= a[ri + k]! * a[rj + k]!;
      a[ri + j] = s / ljj;
    }
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = 0;
  return true;
}

/** Inverse of a small lower-triangular `l` `[n, n]` (float64), row by row. */
function smallLowerInverse(l: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = inv.subarray(i * n, (i + 1) * n);
    row[i] = 1;
    // row_i = (e_i − Σ_{p<i} L[i,p] · row_p) / L[i,i]; row_p is zero beyond p.
    for (let p = 0; p < i; p++) {
      const f = l[i * n + p]!;
      if (f === 0) continue;
      const other = inv.subarray(p * n, p * n + p + 1);
      for (let j = 0; j <= p; j++) row[j]! -= f * other[j]!;
    }
    const d = l[i * n + i]!;
    for (let j = 0; j <= i; j++) row[j]! /= d;
  }
  return inv;
}

/** Rows `[r0, r1)`, columns `[c0, c1)` of row-major `a` (`n` columns), as a contiguous copy. */
function block(a: Float32Array, n: number, r0: number, r1: number, c0: number, c1: number): Float32Array {
  const w = c1 - c0;
  const out = new Float32Array((r1 - r0) * w);
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * n + c0, r * n + c1), (r - r0) * w);
  return out;
}

/** Writes contiguous `src` into rows `[r0, …)`, columns `[c0, c0 + w)` of `a`. */
function putBlock(a: Float32Array, n: number, src: Float32Array, r0: number, c0: number, w: number): void {
  const rows = src.length / w;
  for (let r = 0; r < rows; r++) a.set(src.subarray(r * w, (r + 1) * w), (r0 + r) * n + c0);
}

/**
 * Blocked in-place lower Cholesky of `a` `[n, n]` (float32 storage, panels
 * in float64, trailing updates through `gemm`); false if not positive definite.
 */
export async function blockedCholesky(a: Float32Array, n: number, b: number, gemm: GemmEngine): Promise<boolean> {
  for (let k0 = 0; k0 < n; k0 += b) {
    const k1 = Math.min(k0 + b, n);
    const w = k1 - k0;
    const d = Float64Array.from(block(a, n, k0, k1, k0, k1));
    if (!choleskyLower(d, w)) return false;
    putBlock(a, n, Float32Array.from(d), k0, k0, w);
    if (k1 === n) break;
    // Panel L21 = A21 · L11⁻ᵀ = 0 − A21 · (−L11⁻¹)ᵀ.
    const m = n - k1;
    const negInv = smallLowerInverse(d, w).map((v) => -v);
    const panel = await gemm.subtractProduct(new Float32Array(m * w), m, w, { data: block(a, n, k1, n, k0, k1), rows: m, cols: w }, { data: Float32Array.from(negInv), rows: w, cols: w, t: true });
    putBlock(a, n, panel, k1, k0, w);
    // Trailing A22 −= L21·L21ᵀ.
    const trailing = await gemm.subtractProduct(block(a, n, k1, n, k1, n), m, m, { data: panel, rows: m, cols: w }, { data: panel, rows: m, cols: w, t: true });
    putBlock(a, n, trailing, k1, k1, m);
  }
  for (let i = 0; i < n; i++) a.fill(0, i * n + i + 1, (i + 1) * n);
  return true;
}

/** Blocked inverse of lower-triangular `l` `[n, n]` (row-major), through `gemm` for the off-diagonal products. */
export async function lowerInverse(l: Float32Array, n: number, b: number, gemm: GemmEngine): Promise<Float32Array> {
  const x = new Float32Array(n * n);
  for (let i0 = 0; i0 < n; i0 += b) {
    const i1 = Math.min(i0 + b, n);
    const w = i1 - i0;
    // R = E − L[i0:i1, :i0] · X[:i0, :i1], then X[i0:i1, :i1] = L_ii⁻¹ · R.
    let r: Float32Array = new Float32Array(w * i1);
    for (let q = 0; q < w; q++) r[q * i1 + i0 + q] = 1;
    if (i0 > 0) r = await gemm.subtractProduct(r, w, i1, { data: block(l, n, i0, i1, 0, i0), rows: w, cols: i0 }, { data: block(x, n, 0, i0, 0, i1), rows: i0, cols: i1 });
    const diag = Float64Array.from(block(l, n, i0, i1, i0, i1));
    const negInv = Float32Array.from(smallLowerInverse(diag, w), (v) => -v);
    const rows = await gemm.subtractProduct(new Float32Array(w * i1), w, i1, { data: negInv, rows: w, cols: w }, { data: r, rows: w, cols: i1 });
    putBlock(x, n, rows, i0, 0, i1);
  }
  return x;
}

/** A Hessian to factor, as a {@link FactorEngine} receives it. */
export interface FactorInput {
  /** `[k, k]` row-major, symmetric; multiplied by `scale`. */
  readonly h: ArrayLike<number>;
  readonly k: number;
  /** Column order (activation ordering): permuted column j is column `cols[j]`; null keeps the order. */
  readonly cols: Int32Array | null;
  readonly scale: number;
  /** The dampened diagonal in permuted order (dead columns counted as 1), which replaces `h`'s. */
  readonly diag: Float64Array;
}

/**
 * Where the O(K³) factorization runs when not on a {@link GemmEngine}: it
 * returns `U` `[k, k]` of the permuted, dampened Hessian (see
 * {@link inverseHessianFactor}), or null when the factorization failed.
 */
export interface FactorEngine {
  factor(input: FactorInput): Promise<Float32Array | null>;
}

/**
 * The upper Cholesky factor `U` of `H⁻¹` (`UᵀU = H⁻¹`) after dampening, as
 * llm-compressor uses it (it computes Cholesky, Cholesky inverse, Cholesky);
 * null when `H` is not positive definite. Computed with one Cholesky and one
 * triangular inverse: with `J` the reversal, `JHJ = L·Lᵀ` gives
 * `H = (JLJ)(JLJ)ᵀ` with `JLJ` upper, so `U = (JLJ)⁻¹ = J·L⁻¹·J` — the same
 * matrix, since an upper factor with a positive diagonal is unique.
 */
export async function inverseHessianFactor(h: ArrayLike<number>, n: number, dampeningFrac: number, gemm: GemmEngine | FactorEngine = jsGemm, blockSize = 128): Promise<Float32Array | null> {
  const diag = Float64Array.from({ length: n }, (_, i) => h[i * n + i]!);
  return dampedInverseFactor(n, diag, h, null, 1, dampeningFrac, gemm, blockSize);
}

function isFactorEngine(e: GemmEngine | FactorEngine): e is FactorEngine {
  return 'factor' in e;
}

/**
 * {@link inverseHessianFactor} of `scale · h` with columns taken in the
 * order `cols` (identity when null) and diagonal `diag` (dead columns
 * already set to 1), read straight into the float32 working matrix (no
 * float64 copy of a 70B-class `[28672, 28672]` Hessian).
 */
async function dampedInverseFactor(n: number, diag: Float64Array, h: ArrayLike<number>, cols: Int32Array | null, scale: number, dampeningFrac: number, engine: GemmEngine | FactorEngine, blockSize: number): Promise<Float32Array | null> {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += diag[i]!;
  const damp = (dampeningFrac * mean) / n;
  let u: Float32Array | null;
  if (isFactorEngine(engine)) u = await engine.factor({ h, k: n, cols, scale, diag: diag.map((d) => d + damp) });
  else {
    // The reversal J·H·J: entry (i, j) at (n − 1 − i, n − 1 − j). Plain indexed loops: this pass reads
    // K² entries (32M for an MLP's down_proj).
    const a = new Float32Array(n * n);
    for (let i = 0; i < n; i++) {
      const src = (cols ? cols[i]! : i) * n;
      const row = (n - 1 - i) * n + n - 1;
      if (cols) for (let j = 0; j < n; j++) a[row - j] = h[src + cols[j]!]! * scale;
      else for (let j = 0; j < n; j++) a[row - j] = h[src + j]! * scale;
      a[row - i] = diag[i]! + damp;
    }
    if (!(await blockedCholesky(a, n, blockSize, engine))) return null;
    // U = J·L⁻¹·J: entry (i, j) of L⁻¹ at (n − 1 − i, n − 1 − j), the flat array reversed.
    u = (await lowerInverse(a, n, blockSize, engine)).reverse();
  }
  if (u && !isFactorEngine(engine)) for (let i = 0; i < u.length; i++) if (!Number.isFinite(u[i]!)) return null;
  return u;
}

/**
 * What GPTQ derives from a Hessian alone: the column order (activation
 * ordering), the dead columns, and the upper Cholesky factor of the
 * dampened inverse. Modules that read the same input with the same ordering
 * (q/k/v, gate/up, every expert's gate/up when all experts see all tokens)
 * share one, so it is factored once.
 */
export interface PreparedHessian {
  readonly k: number;
  /** `weight` (static) or `group` ordering: permuted column j is original column `perm[j]`; null keeps column order. */
  readonly ordering: 'weight' | 'group' | null;
  readonly perm: Int32Array | null;
  /** Permuted columns whose Hessian diagonal is exactly zero. */
  readonly dead: readonly number[];
  /** `U` with `UᵀU = (H + λI)⁻¹` in permuted order, or the identity after a failed factorization. */
  readonly hinv: Float32Array;
  readonly fellBack: boolean;
}

/** The ordering GPTQ applies for `args` (group ordering falls back to none on other strategies). */
export function orderingOf(args: QuantizationArgs): PreparedHessian['ordering'] {
  const grouped = isGroupOrdering(args.actorder);
  if (grouped && args.strategy !== 'group' && args.strategy !== 'tensor_group') return null;
  return args.actorder === null ? null : grouped ? 'group' : 'weight';
}

/** Hessians from this width on are factored in panels of {@link WIDE_PANEL} columns. */
const WIDE_FROM = 4096;
const WIDE_PANEL = 512;

/**
 * Columns per panel of the factorization of a `k`-wide Hessian: GPTQ's block
 * size, or 512 for wide ones. Each panel copies the trailing matrix to the
 * GEMM engine and back (≈ `k³/(3·panel)` floats in all); wider panels copy
 * less and move the work into JavaScript's `panel³` panel factorizations,
 * which stay small at 512 (K = 8192 on two cores: 14.6 s at 128, 8.1 s at
 * 512, 16.7 s at 1024). The factor is the same up to float order.
 */
function factorPanel(k: number, blockSize: number): number {
  return k >= WIDE_FROM ? Math.max(blockSize, WIDE_PANEL) : blockSize;
}

/** Prepares normalized Hessian `scale · h` `[k, k]` for the solve (see {@link PreparedHessian}). */
export async function prepareHessian(h: ArrayLike<number>, k: number, ordering: PreparedHessian['ordering'], settings: GptqSettings, gemm: GemmEngine | FactorEngine = jsGemm, scale = 1): Promise<PreparedHessian> {
  const perm = ordering ? descendingOrder(Float64Array.from({ length: k }, (_, i) => h[i * k + i]! * scale)) : null;
  const col = (j: number): number => (perm ? perm[j]! : j);
  // The permuted Hessian, read in place: its diagonal here, the rest as the factorization reads it.
  const diag = Float64Array.from({ length: k }, (_, i) => h[col(i) * k + col(i)]! * scale);
  const dead: number[] = [];
  for (let j = 0; j < k; j++) {
    if (diag[j] !== 0) continue;
    diag[j] = 1;
    dead.push(j);
  }
  let hinv = await dampedInverseFactor(k, diag, h, perm, scale, settings.dampeningFrac, gemm, factorPanel(k, settings.blockSize));
  const fellBack = hinv === null;
  if (!hinv) {
    hinv = new Float32Array(k * k);
    for (let i = 0; i < k; i++) hinv[i * k + i] = 1;
  }
  return { k, ordering, perm, dead, hinv, fellBack };
}

/**
 * Solves one weight (see the module comment and algorithms.md §1.6); heavy
 * products run on `gemm`. `prepared` (from {@link prepareHessian} with this
 * problem's Hessian and ordering) skips the factorization.
 */
export async function solveGptq(p: GptqProblem, settings: GptqSettings, gemm: GemmEngine = jsGemm, prepared?: PreparedHessian): Promise<GptqSolution> {
  const { rows: R, cols: K, args } = p;
  const prep = prepared ?? (await prepareHessian(p.hessian, K, orderingOf(args), settings, gemm));
  const { perm, hinv, fellBack } = prep;
  const col = (j: number): number => (perm ? perm[j]! : j);

  // Wt[j] = (permuted) column j of W: columns are what the loop walks, and a run of them is one contiguous block.
  const wt = new Float32Array(K * R);
  for (let r = 0; r < R; r++) for (let j = 0; j < K; j++) wt[j * R + r] = p.weight[r * K + col(j)]!;

  const { qparams, groupOf, gIdx } = loopQparams(p, prep);
  // Dead columns are zeroed (after the scales were observed on them, as llm-compressor does).
  for (const j of prep.dead) wt.fill(0, j * R, (j + 1) * R);

  const B = Math.max(1, settings.blockSize);
  const q = new Float64Array(R);
  let loss = 0;
  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(i1 + B, K);
    const width = i2 - i1;
    const err = new Float32Array(width * R);
    // Sub-blocks of SUB columns: updates inside a sub-block in JavaScript, to the rest of the block through gemm
    // (the same arithmetic as llm-compressor's loop, in another order).
    for (let j1 = i1; j1 < i2; j1 += SUB) {
      const j2 = Math.min(j1 + SUB, i2);
      for (let c = j1; c < j2; c++) {
        const w = wt.subarray(c * R, (c + 1) * R);
        quantizeColumn(qparams, w, R, groupOf[c]!, q);
        const d = hinv[c * K + c]!;
        const e = err.subarray((c - i1) * R, (c - i1 + 1) * R);
        for (let r = 0; r < R; r++) {
          const diff = w[r]! - q[r]!;
          loss += (diff * diff) / (d * d) / 2;
          e[r] = diff / d;
          w[r] = q[r]!;
        }
        for (let j = c + 1; j < j2; j++) {
          const u = hinv[c * K + j]!;
          if (u === 0) continue;
          const target = wt.subarray(j * R, (j + 1) * R);
          for (let r = 0; r < R; r++) target[r] = target[r]! - e[r]! * u;
        }
      }
      if (j2 < i2) {
        const sub = err.subarray((j1 - i1) * R, (j2 - i1) * R);
        const updated = await gemm.subtractProduct(wt.subarray(j2 * R, i2 * R), i2 - j2, R, { data: block(hinv, K, j1, j2, j2, i2), rows: j2 - j1, cols: i2 - j2, t: true }, { data: sub, rows: j2 - j1, cols: R });
        wt.set(updated, j2 * R);
      }
    }
    // The columns after the block, once per block: Wt[i2:] −= U[i1:i2, i2:]ᵀ · Err.
    if (i2 < K) {
      const rest = K - i2;
      const updated = await gemm.subtractProduct(wt.subarray(i2 * R), rest, R, { data: block(hinv, K, i1, i2, i2, K), rows: width, cols: rest, t: true }, { data: err, rows: width, cols: R });
      wt.set(updated, i2 * R);
    }
  }

  // Cast back to the model dtype (NVFP4's float32 dequantized values round here).
  const { round } = dtypeFacts(p.dtype);
  const out = new Float32Array(R * K);
  for (let j = 0; j < K; j++) {
    const c = col(j);
    for (let r = 0; r < R; r++) out[r * K + c] = round(wt[j * R + r]!);
  }
  return { weight: out, loss, fellBack, qparams, gIdx };
}

/** What the column loop quantizes with: the qparams, the scale group of each permuted column, and (group ordering) `weight_g_idx`. */
export interface LoopQparams {
  readonly qparams: WeightQparams;
  readonly groupOf: Int32Array;
  readonly gIdx: Int32Array | null;
}

/**
 * The qparams of `p` under `prep`'s ordering: static ordering keeps the
 * original groups (permuted column j uses the group of original column
 * `perm[j]`); group ordering re-observes the permuted weight in float32 and
 * groups permuted columns consecutively.
 */
export function loopQparams(p: GptqProblem, prep: PreparedHessian): LoopQparams {
  const { rows: R, cols: K, args } = p;
  const layout = scaleLayout(args, R, K);
  const perm = prep.perm;
  const groupOf = new Int32Array(K);
  if (prep.ordering === 'group') {
    const qparams = weightQparams(p.kind, args, layout, groupStats(p.weight, R, K, layout, perm!), 'F32', p.globalScale);
    const gIdx = new Int32Array(K);
    for (let j = 0; j < K; j++) {
      groupOf[j] = Math.floor(j / layout.width);
      gIdx[perm![j]!] = groupOf[j]!;
    }
    return { qparams, groupOf, gIdx };
  }
  for (let j = 0; j < K; j++) groupOf[j] = Math.floor((perm ? perm[j]! : j) / layout.width);
  return { qparams: weightQparams(p.kind, args, layout, p.stats, p.dtype, p.globalScale), groupOf, gIdx: null };
}

/**
 * The prepared identity Hessian without dampening (the factor is exactly
 * `I`): GPTQ with it is round-to-nearest with GPTQ's scales, as for a
 * module the expert coverage policy rounds to nearest.
 */
export function identityPrepared(k: number, ordering: PreparedHessian['ordering']): PreparedHessian {
  const hinv = new Float32Array(k * k);
  for (let i = 0; i < k; i++) hinv[i * k + i] = 1;
  // A stable sort of a constant diagonal keeps column order.
  return { k, ordering, perm: ordering ? Int32Array.from({ length: k }, (_, i) => i) : null, dead: [], hinv, fellBack: false };
}
