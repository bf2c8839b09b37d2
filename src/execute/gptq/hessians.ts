/**
 * Hessians of one layer's GPTQ targets, folded batch by batch from the
 * layer graphs' `hess:` / `ehess:` / `hessall:` outputs (see observe.ts):
 * one accumulator per distinct input, so q/k/v share one and, when every
 * expert sees every token, all experts' gate/up share one. The count `n`
 * follows llm-compressor: sequences for `[B, T, K]` inputs, forward calls
 * (batches) for the 2-D inputs experts receive. An input split across
 * graphs arrives as upper-triangle row blocks (`hessrows:`), folded in
 * place and mirrored once when the sum is read.
 */
import type { RawTensor } from '../runtime.js';

/** One accumulated `Σ xxᵀ` and its sample count. */
export interface HessianSum {
  readonly k: number;
  /**
   * The sum: the one run's float32 output itself while a single run has been
   * folded (a looped pass returns its layer's whole sum at once), widened to
   * float64 when a second is added (the same values either way).
   */
  sum: Float32Array | Float64Array;
  n: number;
  /** Whether every value folded in was finite (a float64 sum of float32 values cannot overflow, so the sum is finite exactly then). */
  finite: boolean;
  /** Only the upper triangle is summed so far (row blocks); the lower is mirrored when read. */
  upper?: boolean;
}

/** The sum of an accumulator nothing was folded into yet. */
const EMPTY = new Float64Array(0);

/** `h`'s sum as float64 (zeros for a new one), widening a kept run's float32 output first. */
function wide(h: HessianSum): Float64Array {
  if (h.sum instanceof Float64Array && h.sum !== EMPTY) return h.sum;
  const sum = new Float64Array(h.k * h.k);
  if (h.sum !== EMPTY) sum.set(h.sum);
  h.sum = sum;
  return sum;
}

/** The Hessians of a layer, keyed by module (experts sharing one are keyed `<experts>.*.<proj>`). */
export class HessianStore {
  private readonly sums = new Map<string, HessianSum>();
  /** Module (or shared key) → accumulator key. */
  private readonly owners = new Map<string, string>();

  /** Folds one run's graph outputs in: `rows` sequences from `calls` forward calls (batches). */
  add(outputs: Readonly<Record<string, RawTensor>>, rows: number, calls = 1): void {
    for (const [name, t] of Object.entries(outputs)) {
      const colon = name.indexOf(':');
      const kind = name.slice(0, colon);
      const key = name.slice(colon + 1);
      const data = t.data as Float32Array;
      if (kind === 'hess') this.fold(key, key.split(','), data, 0, t.dims[0]!, rows);
      else if (kind === 'hessrows') {
        const bar = key.lastIndexOf('|');
        const r0 = Number(key.slice(bar + 1));
        // One run's row blocks together count its sequences once.
        this.foldRows(key.slice(0, bar), data, r0, t.dims[0]!, r0 + t.dims[1]!, r0 === 0 ? rows : 0);
      }      else if (kind === 'hessall') {
        const [experts, projs] = key.split('|') as [string, string];
        this.fold(key, projs.split(',').map((p) => `${experts}.*.${p}`), data, 0, t.dims[0]!, calls);
      } else if (kind === 'ehess') {
        const [experts, projs, offset] = key.split('|') as [string, string, string];
        const [e, k] = t.dims as [number, number];
        for (let i = 0; i < e; i++) {
          const expert = Number(offset) + i;
          this.fold(`${experts}|${expert}|${projs}`, projs.split(',').map((p) => `${experts}.${expert}.${p}`), data, i * k * k, k, calls);
        }
      }
    }
  }

  private accumulator(key: string, modules: readonly string[], k: number): HessianSum {
    let h = this.sums.get(key);
    if (!h) {
      h = { k, sum: EMPTY, n: 0, finite: true };
      this.sums.set(key, h);
      for (const m of modules) this.owners.set(m, key);
    }
    return h;
  }

  private fold(key: string, modules: readonly string[], data: Float32Array, offset: number, k: number, n: number): void {
    const h = this.accumulator(key, modules, k);
    // `x · 0` is NaN for a NaN or an infinity: one sum checks every value on the way (see groupStats).
    let poison = 0;
    if (h.sum === EMPTY) {
      // The first run's sum is kept as it came (no float64 copy of a sum that is often the only one).
      const own = data.subarray(offset, offset + k * k);
      for (let i = 0; i < own.length; i++) poison += own[i]! * 0;
      h.sum = own;
    } else {
      const sum = wide(h);
      for (let i = 0; i < k * k; i++) {
        const x = data[offset + i]!;
        sum[i]! += x;
        poison += x * 0;
      }
    }
    if (poison !== 0) h.finite = false;
    h.n += n;
  }

  /**
   * Rows `[r0, r0 + rows)` of `Σ xxᵀ [k, k]` from column `r0` on (`data`
   * `[rows, k − r0]`); only their upper-triangle entries are kept.
   */
  private foldRows(key: string, data: Float32Array, r0: number, rows: number, k: number, n: number): void {
    const h = this.accumulator(key, key.split(','), k);
    const sum = wide(h);
    const w = k - r0;
    let poison = 0;
    for (let r = 0; r < rows; r++) {
      const i = r0 + r;
      const row = i * k;
      for (let c = r; c < w; c++) {
        const x = data[r * w + c]!;
        sum[row + r0 + c]! += x;
        poison += x * 0;
      }
    }
    if (poison !== 0) h.finite = false;
    h.n += n;
    h.upper = true;
  }

  /** Completes a sum folded by row blocks: the lower triangle mirrors the upper. */
  private static settle(h: HessianSum): HessianSum {
    if (!h.upper) return h;
    const { k, sum } = h;
    // In tiles, so that the transposed reads stay in cache (a 70B-class sum is 28672 wide).
    const T = 64;
    for (let i0 = 0; i0 < k; i0 += T)
      for (let j0 = 0; j0 <= i0; j0 += T)
        for (let i = i0; i < Math.min(i0 + T, k); i++) for (let j = j0; j < Math.min(j0 + T, i); j++) sum[i * k + j] = sum[j * k + i]!;
    h.upper = false;
    return h;
  }

  /** The key of `module`'s accumulator (modules with equal keys share one Hessian), if the layer observed its input. */
  keyOf(module: string): string | undefined {
    const key = this.owners.get(module);
    if (key !== undefined) return key;
    const m = /^(.*)\.\d+\.([^.]+)$/.exec(module);
    return m ? this.owners.get(`${m[1]}.*.${m[2]}`) : undefined;
  }

  /** The accumulator of `module`'s input, if the layer observed it. */
  sumOf(module: string): HessianSum | undefined {
    const key = this.keyOf(module);
    const h = key === undefined ? undefined : this.sums.get(key);
    return h && HessianStore.settle(h);
  }

  /**
   * `2·Σxxᵀ/n`, the Hessian GPTQ solves with, as the sum and its factor
   * (no copy: a 70B-class `down_proj` sum is 6.6 GB); null if unobserved.
   */
  hessian(module: string): { sum: Float32Array | Float64Array; scale: number; k: number; n: number } | null {
    const s = this.sumOf(module);
    if (!s) return null;
    return { sum: s.sum, scale: s.n > 0 ? 2 / s.n : 0, k: s.k, n: s.n };
  }

  /** Distinct accumulators (for the summary: Hessians computed vs modules served). */
  get count(): number {
    return this.sums.size;
  }
}
