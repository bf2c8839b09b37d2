/**
 * Rotary embedding tables, computed as transformers does: inverse
 * frequencies in float32, `freqs = inv_freq ⊗ positions` in float32, then
 * `cos`/`sin` of `[freqs, freqs]` (the half-split layout `rotate_half` uses),
 * times the attention scaling of yarn.
 */
import type { RopeConfig } from './decoder-config.js';

function yarnGetMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/** The factor transformers multiplies cos/sin by: 1, yarn's attention factor, or longrope's mscale for a sequence of `seq` positions. */
export function attentionScaling(rope: RopeConfig, seq = 0): number {
  if (rope.longrope) return seq > rope.originalMaxPositions ? rope.longrope.longMscale : rope.longrope.shortMscale;
  if (rope.type !== 'yarn') return 1;
  if (rope.attentionFactor !== null) return rope.attentionFactor;
  if (rope.mscale && rope.mscaleAllDim) return yarnGetMscale(rope.factor, rope.mscale) / yarnGetMscale(rope.factor, rope.mscaleAllDim);
  return yarnGetMscale(rope.factor);
}

/** yarn: interpolated and extrapolated frequencies blended by a linear ramp over the correction range. */
function yarnFrequencies(rope: RopeConfig): Float32Array {
  const dim = rope.dim;
  const correctionDim = (rotations: number): number => (dim * Math.log(rope.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(rope.theta));
  let low = correctionDim(rope.betaFast);
  let high = correctionDim(rope.betaSlow);
  if (rope.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const pos = Math.fround(rope.theta ** Math.fround(Math.fround(2 * i) / dim));
    const extrapolation = Math.fround(1 / pos);
    const interpolation = Math.fround(1 / Math.fround(rope.factor * pos));
    const ramp = Math.min(1, Math.max(0, Math.fround((i - low) / (high - low))));
    const keep = Math.fround(1 - ramp);
    inv[i] = Math.fround(interpolation * (1 - keep) + extrapolation * keep);
  }
  return inv;
}

/** Per-position tables `[seq, dim]`, row-major. */
export interface RopeTables {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  readonly dim: number;
}

/** The inverse frequencies `[dim / 2]` for `rope`. */
export function inverseFrequencies(rope: RopeConfig): Float32Array {
  if (rope.type === 'yarn') return yarnFrequencies(rope);
  const half = rope.dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(2 * i) / rope.dim);
    const freq = Math.fround(rope.theta ** exponent);
    inv[i] = Math.fround(1 / (rope.longrope ? Math.fround(Math.fround(rope.longrope.shortFactor[i]!) * freq) : freq));
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
  const scale = attentionScaling(rope, seq);
  const half = inv.length;
  const dim = half * 2;
  const cos = new Float32Array(seq * dim);
  const sin = new Float32Array(seq * dim);
  for (let p = 0; p < seq; p++) {
    for (let i = 0; i < half; i++) {
      const f = Math.fround(p * inv[i]!);
      const c = Math.fround(Math.cos(f)) * scale;
      const s = Math.fround(Math.sin(f)) * scale;
      cos[p * dim + i] = c;
      cos[p * dim + half + i] = c;
      sin[p * dim + i] = s;
      sin[p * dim + half + i] = s;
    }
  }
  return { cos, sin, dim };
}
