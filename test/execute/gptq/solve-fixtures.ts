/** Shared inputs of the GPTQ solve tests: the int4 group-16 weight args and a deterministic generator. */
import type { QuantizationArgs } from '../../../src/ir/types.js';

/** Symmetric int4 weights in groups of 16 columns. */
export const W4G16: QuantizationArgs = {
  num_bits: 4,
  type: 'int',
  symmetric: true,
  group_size: 16,
  strategy: 'group',
  block_structure: null,
  dynamic: false,
  actorder: null,
  scale_dtype: null,
  zp_dtype: null,
  observer: 'memoryless_minmax',
  observer_kwargs: {},
};

/** A deterministic generator of values in [-0.5, 0.5) (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}
