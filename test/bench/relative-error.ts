/** Largest |a − b| relative to the largest |b|: Infinity when the lengths differ, or when b is all zeros and a is not. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return scale === 0 ? (diff === 0 ? 0 : Infinity) : diff / scale;
}
