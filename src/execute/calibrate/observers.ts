/**
 * Static activation statistics and the scales compressed-tensors derives
 * from them. Accumulation is llm-compressor's `static_minmax` observer:
 * running min and max over every calibration batch.
 */
import type { ObservedValue } from '../forward/observe.js';
import { dtypeFacts, roundHalfEven } from '../rtn/qparams.js';
import type { WeightDtype } from '../rtn/weight-kernel.js';

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

/** `max(|min(min, 0)|, max(max, 0))`: the range a symmetric scale must cover (0 always representable). */
export function absRange(s: MinMax): number {
  return Math.max(Math.abs(Math.min(s.min, 0)), Math.max(s.max, 0));
}

/**
 * Float32 arithmetic rounded to `dtype`, as PyTorch computes on tensors of
 * that dtype; observed values are rounded too, since a model running in
 * `dtype` only produces activations of that dtype.
 */
function arithmetic(dtype: WeightDtype): { r: (x: number) => number; eps: number; tiny: number } {
  const facts = dtypeFacts(dtype);
  return { r: (x) => facts.round(Math.fround(x)), eps: facts.eps, tiny: facts.tiny };
}

/**
 * FP8 E4M3 static per-tensor input scale (also the kv-cache `k_scale` /
 * `v_scale`), as compressed-tensors' `calculate_qparams` computes it in the
 * model's dtype (`dtype`, float32 by default): `absmax / 448`, a zero scale
 * replaced by the dtype's eps.
 */
export function fp8InputScale(s: MinMax, dtype: WeightDtype = 'F32'): number {
  const { r, eps } = arithmetic(dtype);
  const scale = r(r(absRange(s)) / FP8_E4M3_MAX);
  return scale === 0 ? eps : scale;
}

/**
 * NVFP4 input global scale, as compressed-tensors' `generate_gparam`:
 * `448 · 6 / max(absmax, tiny)` in the model's dtype, stored as float32;
 * NaN or Inf become 1.
 */
export function nvfp4GlobalScale(s: MinMax, dtype: WeightDtype = 'F32'): number {
  const { r, tiny } = arithmetic(dtype);
  const g = r((FP8_E4M3_MAX * FP4_E2M1_MAX) / Math.max(r(absRange(s)), tiny));
  return Number.isFinite(g) ? g : 1;
}

/**
 * Static per-tensor integer input quantization parameters, as
 * compressed-tensors' `calculate_qparams` computes them in the model's dtype:
 * symmetric `absmax / ((qmax - qmin) / 2)` with zero point 0, or asymmetric
 * `(max - min) / (qmax - qmin)` with zero point
 * `round(clamp(qmin - min / scale, qmin, qmax))` (range widened to hold 0).
 */
export function intInputQParams(s: MinMax, bits: number, symmetric: boolean, dtype: WeightDtype = 'F32'): { scale: number; zeroPoint: number } {
  const { r, eps } = arithmetic(dtype);
  const qmin = -(2 ** (bits - 1));
  const qmax = 2 ** (bits - 1) - 1;
  if (symmetric) {
    const scale = r(r(absRange(s)) / ((qmax - qmin) / 2));
    return { scale: scale === 0 ? eps : scale, zeroPoint: 0 };
  }
  const min = r(Math.min(s.min, 0));
  const max = r(Math.max(s.max, 0));
  const scale = r(r(max - min) / (qmax - qmin));
  const zeroPoint = roundHalfEven(Math.min(qmax, Math.max(qmin, r(qmin - r(min / scale)))));
  return { scale: scale === 0 ? eps : scale, zeroPoint };
}
