/**
 * Static activation statistics and the scales compressed-tensors derives
 * from them. Accumulation is llm-compressor's `static_minmax` observer:
 * running min and max over every calibration batch.
 */
import type { ObservedValue } from '../forward/observe.js';

/** Running min/max of one module's input; `min > max` while nothing was observed. */
export interface MinMax {
  min: number;
  max: number;
}

/** Running min/max per module. */
export class StaticMinMax {
  readonly stats = new Map<string, MinMax>();

  /** Folds one observation in (infinite values, an expert that saw no token, are skipped). */
  add(v: ObservedValue): void {
    if (!Number.isFinite(v.value)) return;
    let s = this.stats.get(v.module);
    if (!s) {
      s = { min: Infinity, max: -Infinity };
      this.stats.set(v.module, s);
    }
    if (v.stat === 'min') s.min = Math.min(s.min, v.value);
    else s.max = Math.max(s.max, v.value);
  }
}

/**
 * Min/max of the last batch only: llm-compressor's `memoryless_minmax`, the
 * default observer of static arguments that name none (so of
 * `kv_cache_scheme`): the scale it saves reflects the last calibration batch
 * alone.
 */
export class LastBatchMinMax {
  readonly stats = new Map<string, MinMax & { batch: number }>();

  /** Folds one observation of batch `batch` in; a later batch replaces earlier ones. */
  add(v: ObservedValue, batch: number): void {
    if (!Number.isFinite(v.value)) return;
    let s = this.stats.get(v.module);
    if (!s || s.batch !== batch) {
      s = { batch, min: Infinity, max: -Infinity };
      this.stats.set(v.module, s);
    }
    if (v.stat === 'min') s.min = Math.min(s.min, v.value);
    else s.max = Math.max(s.max, v.value);
  }
}

const FP8_E4M3_MAX = 448;
const FP4_E2M1_MAX = 6;
const FLOAT32_EPS = 2 ** -23;
const FLOAT32_TINY = 2 ** -126;

/** `max(|min(min, 0)|, max(max, 0))`: the range a symmetric scale must cover (0 always representable). */
export function absRange(s: MinMax): number {
  return Math.max(Math.abs(Math.min(s.min, 0)), Math.max(s.max, 0));
}

/**
 * FP8 E4M3 static per-tensor input scale, as compressed-tensors'
 * `calculate_qparams` computes it in float32: `absmax / 448`, a zero scale
 * replaced by float32 eps.
 */
export function fp8InputScale(s: MinMax): number {
  const scale = Math.fround(Math.fround(absRange(s)) / FP8_E4M3_MAX);
  return scale === 0 ? FLOAT32_EPS : scale;
}

/**
 * NVFP4 input global scale, as compressed-tensors' `generate_gparam`:
 * `448 · 6 / max(absmax, float32 tiny)` in float32; NaN or Inf become 1.
 */
export function nvfp4GlobalScale(s: MinMax): number {
  const g = Math.fround((FP8_E4M3_MAX * FP4_E2M1_MAX) / Math.max(Math.fround(absRange(s)), FLOAT32_TINY));
  return Number.isFinite(g) ? g : 1;
}

/** Rounds half to even, as `torch.round` does. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Static per-tensor integer input quantization parameters, as
 * compressed-tensors' `calculate_qparams` computes them in float32:
 * symmetric `absmax / ((qmax - qmin) / 2)` with zero point 0, or asymmetric
 * `(max - min) / (qmax - qmin)` with zero point
 * `round(clamp(qmin - min / scale, qmin, qmax))` (range widened to hold 0).
 */
export function intInputQParams(s: MinMax, bits: number, symmetric: boolean): { scale: number; zeroPoint: number } {
  const qmin = -(2 ** (bits - 1));
  const qmax = 2 ** (bits - 1) - 1;
  if (symmetric) {
    const scale = Math.fround(Math.fround(absRange(s)) / ((qmax - qmin) / 2));
    return { scale: scale === 0 ? FLOAT32_EPS : scale, zeroPoint: 0 };
  }
  const min = Math.fround(Math.min(s.min, 0));
  const max = Math.fround(Math.max(s.max, 0));
  const scale = Math.fround(Math.fround(max - min) / (qmax - qmin));
  const zeroPoint = roundHalfEven(Math.min(qmax, Math.max(qmin, Math.fround(qmin - Math.fround(min / scale)))));
  return { scale: scale === 0 ? FLOAT32_EPS : scale, zeroPoint };
}
