/**
 * The GPTQ solve of one weight (llm-compressor `quantize_weight`): dead
 * columns, relative dampening, the upper Cholesky factor of the inverse
 * Hessian, and the blockwise column loop with lazy batch updates, with
 * scales fixed before the loop. Pure TypeScript in float64 (llm-compressor
 * runs float32; GPTQ's objective, not its integer codes, is what two valid
 * float orders agree on).
 */
import { isGroupOrdering } from '../../ir/quant-args.js';
import type { QuantizationArgs } from '../../ir/types.js';
import { dtypeFacts } from '../rtn/qparams.js';
import type { KernelKind, WeightDtype } from '../rtn/weight-kernel.js';
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
  /** Normalized Hessian `2·Σxxᵀ/n`, `[cols, cols]` row-major. */
  readonly hessian: Float32Array | Float64Array;
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

/** `(L·Lᵀ)⁻¹` from a lower Cholesky factor (`torch.cholesky_inverse`), full symmetric `[n, n]`. */
export function choleskyInverse(l: Float64Array, n: number): Float64Array {
  // Linv = L⁻¹ (lower), then H⁻¹ = Linvᵀ · Linv.
  const inv = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    inv[j * n + j] = 1 / l[j * n + j]!;
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      for (let k = j; k < i; k++) s -= l[i * n + k]! * inv[k * n + j]!;
      inv[i * n + j] = s / l[i * n + i]!;
    }
  }
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += inv[k * n + i]! * inv[k * n + j]!;
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/**
 * The upper Cholesky factor `U` of `H⁻¹` (`UᵀU = H⁻¹`) after dampening, as
 * llm-compressor computes it; null when any factorization fails.
 */
export function inverseHessianFactor(h: Float64Array, n: number, dampeningFrac: number): Float64Array | null {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i]!;
  const damp = (dampeningFrac * mean) / n;
  const a = Float64Array.from(h);
  for (let i = 0; i < n; i++) a[i * n + i]! += damp;
  if (!choleskyLower(a, n)) return null;
  const inv = choleskyInverse(a, n);
  if (!choleskyLower(inv, n)) return null;
  // Upper factor = transpose of the lower one.
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = inv[i * n + j]!;
  return u;
}

/** Solves one weight (see the module comment and algorithms.md §1.6). */
export function solveGptq(p: GptqProblem, settings: GptqSettings): GptqSolution {
  const { rows: R, cols: K, args } = p;
  const layout = scaleLayout(args, R, K);
  const grouped = isGroupOrdering(args.actorder);
  const actorder = grouped && args.strategy !== 'group' && args.strategy !== 'tensor_group' ? null : args.actorder === null ? null : grouped ? 'group' : 'weight';
  const h = Float64Array.from(p.hessian);
  const diag = Float64Array.from({ length: K }, (_, i) => h[i * K + i]!);
  const perm = actorder ? descendingOrder(diag) : null;

  // W in (possibly permuted) column order, row-major, float64.
  const w = new Float64Array(R * K);
  for (let r = 0; r < R; r++) for (let j = 0; j < K; j++) w[r * K + j] = p.weight[r * K + (perm ? perm[j]! : j)]!;
  let hp = h;
  if (perm) {
    hp = new Float64Array(K * K);
    for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) hp[i * K + j] = h[perm[i]! * K + perm[j]!]!;
  }

  // Scale group of each (permuted) column: static ordering keeps original groups; group ordering regroups.
  let qparams: WeightQparams;
  const groupOf = new Int32Array(K);
  if (actorder === 'group') {
    const stats = groupStats(p.weight, R, K, layout, perm!);
    qparams = weightQparams(p.kind, args, layout, stats, 'F32', p.globalScale);
    for (let j = 0; j < K; j++) groupOf[j] = Math.floor(j / layout.width);
  } else {
    qparams = weightQparams(p.kind, args, layout, p.stats, p.dtype, p.globalScale);
    for (let j = 0; j < K; j++) groupOf[j] = Math.floor((perm ? perm[j]! : j) / layout.width);
  }

  // Dead columns: exactly zero diagonal.
  for (let j = 0; j < K; j++) {
    if (hp[j * K + j] !== 0) continue;
    hp[j * K + j] = 1;
    for (let r = 0; r < R; r++) w[r * K + j] = 0;
  }

  let hinv = inverseHessianFactor(hp, K, settings.dampeningFrac);
  const fellBack = hinv === null;
  if (!hinv) {
    hinv = new Float64Array(K * K);
    for (let i = 0; i < K; i++) hinv[i * K + i] = 1;
  }

  const B = Math.max(1, settings.blockSize);
  const col = new Float64Array(R);
  const q = new Float64Array(R);
  const err = new Float64Array(R * B);
  let loss = 0;
  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(i1 + B, K);
    const width = i2 - i1;
    for (let i = 0; i < width; i++) {
      const c = i1 + i;
      for (let r = 0; r < R; r++) col[r] = w[r * K + c]!;
      quantizeColumn(qparams, col, R, groupOf[c]!, q);
      const d = hinv[c * K + c]!;
      for (let r = 0; r < R; r++) {
        const diff = col[r]! - q[r]!;
        loss += (diff * diff) / (d * d) / 2;
        const e = diff / d;
        err[r * B + i] = e;
        const row = r * K;
        w[row + c] = q[r]!;
        // Lazy update inside the block: the remaining columns of this block.
        for (let j = c + 1; j < i2; j++) w[row + j]! -= e * hinv[c * K + j]!;
      }
    }
    // The columns after the block, once per block.
    if (i2 < K) {
      for (let r = 0; r < R; r++) {
        const row = r * K;
        for (let i = 0; i < width; i++) {
          const e = err[r * B + i]!;
          if (e === 0) continue;
          const hrow = (i1 + i) * K;
          for (let j = i2; j < K; j++) w[row + j]! -= e * hinv[hrow + j]!;
        }
      }
    }
  }

  // Cast back to the model dtype (NVFP4's float32 dequantized values round here).
  const { round } = dtypeFacts(p.dtype);
  const out = new Float32Array(R * K);
  for (let r = 0; r < R; r++) for (let j = 0; j < K; j++) out[r * K + (perm ? perm[j]! : j)] = round(w[r * K + j]!);
  let gIdx: Int32Array | null = null;
  if (actorder === 'group') {
    gIdx = new Int32Array(K);
    for (let j = 0; j < K; j++) gIdx[perm![j]!] = Math.floor(j / layout.width);
  }
  return { weight: out, loss, fellBack, qparams, gIdx };
}
