/**
 * SmoothQuantModifier on the sequential pipeline: pass A records the
 * per-channel min and max of every smooth layer's output (the input its
 * balance layers read, observed inside the layer graph); between the passes
 * each mapping's smoothing scales are folded into the norm weight (divided)
 * and the balance layers' input columns (multiplied), in llm-compressor's
 * arithmetic (algorithms.md §4.4); pass B propagates the smoothed layer.
 */
import { roundBf16, roundF16 } from '../dtypes.js';
import type { DenseMatrix } from '../forward/dequantize.js';
import { CoverageCollector } from '../calibrate/coverage.js';
import type { Observation } from '../forward/observe.js';
import type { WeightReader } from '../forward/weights.js';
import type { WeightChanges } from '../pipeline/overlay-weights.js';
import type { LayerModifier } from '../pipeline/sequential.js';
import type { RawTensor } from '../runtime.js';
import type { SmoothMapping } from '../../match/smoothquant-mappings.js';

/** llm-compressor's `MINIMUM_SMOOTHING_SCALE`. */
export const MINIMUM_SMOOTHING_SCALE = 1e-5;

/** What the modifier did to one mapping. */
export interface SmoothReport {
  readonly smooth: string;
  readonly balance: readonly string[];
  /** The float32 smoothing scale of each channel. */
  readonly scales: Float32Array;
  /** Channels whose scale is llm-compressor's floor {@link MINIMUM_SMOOTHING_SCALE} (zero or next-to-zero activation range). */
  readonly floored: number;
}

/** Channels of `scales` at the floor {@link MINIMUM_SMOOTHING_SCALE}. */
export function flooredScales(scales: Float32Array): number {
  const floor = Math.fround(MINIMUM_SMOOTHING_SCALE);
  let n = 0;
  for (const s of scales) if (s <= floor) n++;
  return n;
}

/** A mapping the statistics never reached; the message is user-facing. */
export class SmoothStatisticsError extends Error {}

function layerOf(name: string): number | null {
  const m = /(?:^|\.)layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * The smoothing scales of one mapping, as llm-compressor computes them in
 * the model dtype: `A = max − min` of the activations (model-dtype values),
 * `Wm = 2·max |W[:, c]|` over the balance layers, `s = A^α / Wm^(1−α)`
 * with the exponents rounded to the model dtype as PyTorch rounds them
 * (α = 0.8 is 0.80078125 in bf16), `A` where `Wm` is 0, then
 * `max(s, 1e-5)` in float32.
 */
export function smoothingScales(min: Float32Array, max: Float32Array, balance: readonly DenseMatrix[], alpha: number, round: (x: number) => number): Float32Array {
  const k = min.length;
  const wmax = new Float32Array(k);
  for (const w of balance) {
    for (let r = 0; r < w.rows; r++) {
      const row = w.data.subarray(r * w.cols, (r + 1) * w.cols);
      for (let c = 0; c < k; c++) {
        const a = Math.abs(row[c]!);
        if (a > wmax[c]!) wmax[c] = a;
      }
    }
  }
  const f = Math.fround;
  // PyTorch's power of a bf16/fp16 tensor by a Python float rounds the exponent to the tensor's dtype first.
  const ea = round(alpha);
  const ew = round(1 - alpha);
  const s = new Float32Array(k);
  for (let c = 0; c < k; c++) {
    const a = round(f(round(max[c]!) - round(min[c]!)));
    const wm = round(f(2 * wmax[c]!));
    const scale = wm > 0 ? round(f(round(Math.pow(a, ea)) / round(Math.pow(wm, ew)))) : a;
    s[c] = Math.max(scale, MINIMUM_SMOOTHING_SCALE);
  }
  return s;
}

/** The SmoothQuant {@link LayerModifier} for resolved mappings. */
export class SmoothQuantModifier implements LayerModifier {
  readonly observe: Observation;
  /** Every weight smoothed so far (the model after the pass). */
  readonly linears = new Map<string, DenseMatrix>();
  readonly vectors = new Map<string, Float32Array>();
  readonly reports: SmoothReport[] = [];
  readonly coverage = new CoverageCollector();
  private readonly mins = new Map<string, Float32Array>();
  private readonly maxs = new Map<string, Float32Array>();
  private readonly round: (x: number) => number;

  constructor(
    private readonly weights: WeightReader,
    private readonly mappings: readonly SmoothMapping[],
    private readonly alpha: number,
    calibrateAllExperts: boolean,
    /** Zero-centred norm weights (scale `1 + weight`, see offset-norms.ts), smoothed as llm-compressor smooths them. */
    private readonly offsetNorms: ReadonlySet<string> = new Set(),
  ) {
    this.observe = { experts: calibrateAllExperts ? 'all' : 'routed', hessians: false, channels: true };
    this.round = weights.dtype === 'bfloat16' ? roundBf16 : weights.dtype === 'float16' ? roundF16 : Math.fround;
  }

  collect(layer: number, _run: number, _rows: number, _calls: number, outputs: Readonly<Record<string, RawTensor>>): void {
    this.coverage.add(layer, outputs);
    for (const [name, t] of Object.entries(outputs)) {
      const kind = name.startsWith('cmin:') ? this.mins : name.startsWith('cmax:') ? this.maxs : null;
      if (!kind) continue;
      const data = t.data as Float32Array;
      for (const module of name.slice(5).split(',')) {
        const prev = kind.get(module);
        if (!prev) kind.set(module, Float32Array.from(data));
        else if (kind === this.mins) for (let i = 0; i < data.length; i++) prev[i] = Math.min(prev[i]!, data[i]!);
        else for (let i = 0; i < data.length; i++) prev[i] = Math.max(prev[i]!, data[i]!);
      }
    }
  }

  async finishLayer(layer: number): Promise<WeightChanges> {
    const linears = new Map<string, DenseMatrix>();
    const vectors = new Map<string, Float32Array>();
    for (const m of this.mappings) {
      if (layerOf(m.smooth) !== layer) continue;
      // The smooth layer's output is what its balance layers read.
      const observed = m.balance.find((b) => this.mins.has(b));
      if (!observed) throw new SmoothStatisticsError(`${m.smooth}: the calibration pass never observed the input of ${m.balance.join(', ')}, so it cannot be smoothed`);
      const balance = await Promise.all(m.balance.map(async (b) => linears.get(b) ?? this.linears.get(b) ?? (await this.weights.linear(b))));
      const lo = this.mins.get(observed)!;
      const hi = this.maxs.get(observed)!;
      if (![...lo, ...hi].every(Number.isFinite)) throw new SmoothStatisticsError(`${m.smooth}: its output overflowed on the calibration data (NaN or infinity), so its smoothing scales would be non-finite`);
      const scales = smoothingScales(lo, hi, balance, this.alpha, this.round);
      const f = Math.fround;
      m.balance.forEach((name, i) => {
        const w = balance[i]!;
        const data = new Float32Array(w.data.length);
        for (let r = 0; r < w.rows; r++) for (let c = 0; c < w.cols; c++) data[r * w.cols + c] = this.round(f(w.data[r * w.cols + c]! * scales[c]!));
        linears.set(name, { data, rows: w.rows, cols: w.cols });
      });
      const normName = `${m.smooth}.weight`;
      const norm = await this.weights.vector(normName);
      // An offset norm is smoothed as the plain norm llm-compressor swaps in (weight 1 + w, in the model's dtype) and written back as `scale - 1`.
      const smooth = this.offsetNorms.has(normName)
        ? (v: number, c: number): number => this.round(f(this.round(f(this.round(f(1 + v)) / scales[c]!)) - 1))
        : (v: number, c: number): number => this.round(f(v / scales[c]!));
      vectors.set(normName, Float32Array.from(norm, smooth));
      // A LayerNorm's bias (phimoe) is divided by the same scales, as llm-compressor does.
      const biasName = `${m.smooth}.bias`;
      if (this.weights.has(biasName)) vectors.set(biasName, Float32Array.from(await this.weights.vector(biasName), (v, c) => this.round(f(v / scales[c]!))));
      this.reports.push({ smooth: m.smooth, balance: m.balance, scales, floored: flooredScales(scales) });
    }
    for (const [k, v] of linears) this.linears.set(k, v);
    for (const [k, v] of vectors) this.vectors.set(k, v);
    this.mins.clear();
    this.maxs.clear();
    return { linears, vectors };
  }
}
