/**
 * A xorshift32 generator seeded with `seed` (0 becomes 1): each call returns
 * the next state as an unsigned 32-bit integer. The deterministic data of the
 * benches and of tests that need many varied values.
 */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}
