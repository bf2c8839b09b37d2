/** Shared inputs and comparisons of the attention kernel tests. */

/** Deterministic values in [-2, 2). */
export function values(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 4 - 2);
}

/** The largest absolute difference of two arrays (infinite when their lengths differ). */
export function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return a.length === b.length ? d : Infinity;
}

/** One attention problem: batch × seq tokens, query and KV heads of `dim`, a window or none. */
export interface AttentionCase {
  readonly batch: number;
  readonly seq: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly dim: number;
  readonly window: number | null;
}
