/**
 * Rotary embedding tables, computed as transformers does: inverse
 * frequencies in float32, `freqs = inv_freq ⊗ positions` in float32, then
 * `cos`/`sin` of `[freqs, freqs]` (the half-split layout `rotate_half` uses).
 */
import type { RopeConfig } from './decoder-config.js';

/** Per-position tables `[seq, dim]`, row-major. */
export interface RopeTables {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  readonly dim: number;
}

/** The inverse frequencies `[dim / 2]` for `rope`. */
export function inverseFrequencies(rope: RopeConfig): Float32Array {
  const half = rope.dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(2 * i) / rope.dim);
    inv[i] = Math.fround(1 / Math.fround(rope.theta ** exponent));
  }
  if (rope.type === 'linear') for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i]! / rope.factor);
  if (rope.type === 'llama3') {
    const lowWavelen = rope.originalMaxPositions / rope.lowFreqFactor;
    const highWavelen = rope.originalMaxPositions / rope.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) inv[i] = Math.fround(f / rope.factor);
      else if (wavelen >= highWavelen) {
        const smooth = (rope.originalMaxPositions / wavelen - rope.lowFreqFactor) / (rope.highFreqFactor - rope.lowFreqFactor);
        inv[i] = Math.fround((1 - smooth) * (f / rope.factor) + smooth * f);
      }
    }
  }
  return inv;
}

/** cos/sin tables for positions `0 … seq-1`. */
export function ropeTables(rope: RopeConfig, seq: number): RopeTables {
  const inv = inverseFrequencies(rope);
  const half = inv.length;
  const dim = half * 2;
  const cos = new Float32Array(seq * dim);
  const sin = new Float32Array(seq * dim);
  for (let p = 0; p < seq; p++) {
    for (let i = 0; i < half; i++) {
      const f = Math.fround(p * inv[i]!);
      const c = Math.cos(f);
      const s = Math.sin(f);
      cos[p * dim + i] = c;
      cos[p * dim + half + i] = c;
      sin[p * dim + i] = s;
      sin[p * dim + half + i] = s;
    }
  }
  return { cos, sin, dim };
}
