/**
 * When a dense SiLU-gated MLP runs as slices of its intermediate dimension
 * (see split-mlp.ts), and how its `down_proj` Hessian is then accumulated:
 * as upper-triangle row blocks over the joined slices. Pure arithmetic on
 * shapes, shared by the executor and the plan's cost estimate.
 */

/** Default bound on one expert group's (or MLP slice's) float32 weights in a graph (well under protobuf's 2 GB). */
export const EXPERT_GROUP_BYTES = 1 << 30;

/** Bound on one row block of a split input's Hessian returned by one graph run (float32 bytes). */
export const HESSIAN_BLOCK_BYTES = 1 << 28;

/** How an MLP of width `hidden` and intermediate size `inter` is laid out. */
export interface MlpSlices {
  /** Intermediate columns per slice graph; `inter` itself when the MLP is one graph. */
  readonly slice: number;
  readonly slices: number;
  /** Rows per block of the joined `down_proj` Hessian (split MLPs only; 0 otherwise). */
  readonly hessianRows: number;
}

/**
 * The slices of the MLP: one graph when its float32 gate/up/down weights fit
 * `groupBytes`, else slices of whole multiples of `align` columns (the
 * `down_proj` input quantizer's group).
 */
export function mlpSlices(hidden: number, inter: number, groupBytes = EXPERT_GROUP_BYTES, align = 1): MlpSlices {
  const perRow = 3 * hidden * 4;
  if (inter * perRow <= groupBytes) return { slice: inter, slices: 1, hessianRows: 0 };
  const slice = Math.max(align, Math.floor(groupBytes / perRow / align) * align);
  return { slice, slices: Math.ceil(inter / slice), hessianRows: Math.max(1, Math.min(slice, Math.floor(HESSIAN_BLOCK_BYTES / (4 * inter)))) };
}

/**
 * FLOPs per token of accumulating a `k`-wide input's Hessian as row blocks of
 * `rows`: block `[r0, r1)` multiplies `x[:, r0:r1]ᵀ · x[:, r0:]`, so the sum
 * covers the upper triangle and its diagonal blocks (≈ k² + k·rows, against
 * 2·k² for the full `xᵀx`).
 */
export function rowBlockHessianFlops(k: number, rows: number): number {
  let products = 0;
  for (let r0 = 0; r0 < k; r0 += rows) products += (Math.min(r0 + rows, k) - r0) * (k - r0);
  return 2 * products;
}
