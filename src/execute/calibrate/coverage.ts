/**
 * Expert coverage: how many calibration tokens the router sent to each
 * expert, summed from the MoE layer graphs' `routed` outputs, and how many
 * each expert's observers saw.
 */
import type { RawTensor } from '../runtime.js';

/** Tokens per expert of one MoE layer. */
export interface LayerCoverage {
  readonly layer: number;
  /** Tokens the router sent to each expert. */
  readonly routed: number[];
  /** Tokens each expert's observers saw: all tokens with the all-experts rewrite, else the routed ones. */
  readonly seen: number[];
}

/** The expert coverage report (JSON). */
export interface ExpertCoverage {
  readonly formatVersion: 1;
  /** Calibration tokens run through the model. */
  readonly tokens: number;
  readonly calibrateAllExperts: boolean;
  readonly layers: LayerCoverage[];
}

/** Sums the `routed` outputs of MoE layer graphs over batches. */
export class CoverageCollector {
  private readonly routed = new Map<number, number[]>();

  /** Folds in one layer run's `routed` output, if it has one. */
  add(layer: number, extra: Readonly<Record<string, RawTensor>>): void {
    const t = extra.routed;
    if (!t) return;
    const counts = Array.from(t.data as Float32Array, Math.round);
    const prev = this.routed.get(layer);
    this.routed.set(layer, prev ? prev.map((c, e) => c + counts[e]!) : counts);
  }

  /** The report for `tokens` tokens. */
  report(tokens: number, calibrateAllExperts: boolean): ExpertCoverage {
    const layers = [...this.routed.entries()]
      .sort(([a], [b]) => a - b)
      .map(([layer, counts]) => ({ layer, routed: counts, seen: calibrateAllExperts ? counts.map(() => tokens) : counts }));
    return { formatVersion: 1, tokens, calibrateAllExperts, layers };
  }
}
