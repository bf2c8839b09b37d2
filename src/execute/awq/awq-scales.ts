/**
 * AWQ's arithmetic (llm-compressor `transform/awq/base.py`), pure: the grid
 * of (ratio, duo) points, the balance layers' normalised weight means, the
 * candidate scales of one grid point, the pseudo-quantization of a balance
 * weight during the search (a memoryless min-max observer on `W·s`, the
 * scheme's quantizer, then `/s`), and folding the chosen scales. Float64
 * values stand for PyTorch's float64 tensors (duo scales, because the weight
 * means are float64), `round` for the weight dtype.
 */
import type { QuantizationArgs } from '../../ir/types.js';
import { castFp4, groupStats, scaleLayout, weightQparams, type WeightQparams } from '../gptq/weight-qparams.js';
import { dtypeFacts, roundFp8E4m3, roundHalfEven } from '../rtn/qparams.js';
import { roundBf16, roundBf16InPlace } from '../dtypes.js';
import type { KernelKind, WeightDtype } from '../rtn/weight-kernel.js';

/** `duo_scaling`: True, False or "both". */
export type DuoScaling = boolean | 'both';

/** One grid point: the ratio and whether the weight means take part. */
export interface GridPoint {
  readonly ratio: number;
  readonly duo: boolean;
}

/** `_get_grid_search_params`. */
export function gridPoints(duo: DuoScaling, nGrid: number): GridPoint[] {
  if (duo === 'both') {
    const n = Math.floor(nGrid / 2);
    return Array.from({ length: n }, (_, i) => [false, true].map((d) => ({ ratio: i / (n - 1), duo: d }))).flat();
  }
  if (duo === false) return Array.from({ length: nGrid }, (_, i) => ({ ratio: i / (nGrid - 1), duo: false }));
  return [{ ratio: 0, duo: false }, ...Array.from({ length: nGrid - 1 }, (_, i) => ({ ratio: i / (nGrid - 2), duo: true }))];
}

/** A balance layer's weight and the scheme it is quantized with (null: no scheme, e.g. an ignored router). */
export interface BalanceWeight {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
  readonly args: QuantizationArgs | null;
}

/**
 * `_compute_layer_means`: per input column, the mean over the balance
 * layers' rows of `|W|` divided by its quantization chunk's max (+1e-6),
 * in the weight dtype, summed in float64. Layers without a scheme are left out.
 */
export function layerMeans(layers: readonly BalanceWeight[], round: (x: number) => number): Float64Array {
  const cols = layers[0]!.cols;
  const sum = new Float64Array(cols);
  let count = 0;
  for (const l of layers) {
    if (!l.args) continue;
    const { rows, data } = l;
    // Each chunk's `|W| / (max + 1e-6)` goes straight into its columns' sums: every column still gets its rows in
    // order (chunks run down the rows), so the float64 sums are those of the whole normalised weight, unmade.
    const chunkDiv = (start: number, end: number, stride: number, width: number): void => {
      // One chunk: rows [start, end) × `width` columns from column `stride`.
      let m = 0;
      for (let r = start; r < end; r++) for (let c = stride; c < stride + width; c++) m = Math.max(m, Math.abs(data[r * cols + c]!));
      const d = round(m + 1e-6);
      for (let r = start; r < end; r++) for (let c = stride; c < stride + width; c++) sum[c]! += round(Math.abs(data[r * cols + c]!) / d);
    };
    switch (l.args.strategy) {
      case 'tensor':
        chunkDiv(0, rows, 0, cols);
        break;
      case 'channel':
        for (let r = 0; r < rows; r++) chunkDiv(r, r + 1, 0, cols);
        break;
      case 'group':
      case 'tensor_group': {
        const gs = l.args.group_size ?? cols;
        // reshape(-1, group_size) of the row-major weight: consecutive elements, rows included when they do not divide.
        for (let start = 0; start < data.length; start += gs) {
          let m = 0;
          for (let i = start; i < start + gs; i++) m = Math.max(m, Math.abs(data[i]!));
          const d = round(m + 1e-6);
          for (let i = start, c = start % cols; i < start + gs; i++) {
            sum[c]! += round(Math.abs(data[i]!) / d);
            if (++c === cols) c = 0;
          }
        }
        break;
      }
      case 'block': {
        const [bh, bw] = l.args.block_structure ?? [rows, cols];
        for (let r = 0; r < rows; r += bh!) for (let c = 0; c < cols; c += bw!) chunkDiv(r, Math.min(r + bh!, rows), c, Math.min(bw!, cols - c));
        break;
      }
      default:
        throw new Error(`AWQ: quantization strategy ${String(l.args.strategy)} is not supported`);
    }
    count += rows;
  }
  return sum.map((v) => v / count);
}

/** AWQ's floor on a channel's scale before normalisation (`clamp(min=1e-4)`). */
export const AWQ_SCALE_FLOOR = 1e-4;

/**
 * Channels whose scale at grid point `p` is AWQ's floor before normalisation
 * (see {@link gridScales}): their activation mean is zero or next to it.
 */
export function flooredChannels(xMean: Float32Array, wMean: Float64Array | null, p: GridPoint): number {
  const f = Math.fround;
  const r32 = f(p.ratio);
  let n = 0;
  for (let c = 0; c < xMean.length; c++) {
    const v = p.duo ? (wMean ? f(Math.pow(xMean[c]!, r32)) / (Math.pow(wMean[c]!, 1 - p.ratio) + 1e-4) : Infinity) : f(Math.pow(xMean[c]!, r32));
    if (v <= (p.duo ? AWQ_SCALE_FLOOR : f(AWQ_SCALE_FLOOR))) n++;
  }
  return n;
}

/**
 * The scales of one grid point. Duo: `clamp(x^r / (w^(1−r) + 1e-4), 1e-4)`
 * in float64 (`x^r` a float32 power); else `clamp(x^r, 1e-4)` in float32;
 * then divided by `sqrt(max·min)`, non-finite values set to 1.
 */
export function gridScales(xMean: Float32Array, wMean: Float64Array | null, p: GridPoint): Float64Array {
  const f = Math.fround;
  const n = xMean.length;
  const s = new Float64Array(n);
  const r32 = f(p.ratio);
  if (p.duo) {
    if (!wMean) throw new Error('duo scaling needs the weight means');
    for (let c = 0; c < n; c++) s[c] = Math.max(f(Math.pow(xMean[c]!, r32)) / (Math.pow(wMean[c]!, 1 - p.ratio) + 1e-4), 1e-4);
    let mx = -Infinity;
    let mn = Infinity;
    for (const v of s) {
      mx = Math.max(mx, v);
      mn = Math.min(mn, v);
    }
    const d = Math.sqrt(mx * mn);
    for (let c = 0; c < n; c++) s[c] = s[c]! / d;
  } else {
    for (let c = 0; c < n; c++) s[c] = Math.max(f(Math.pow(xMean[c]!, r32)), f(1e-4));
    let mx = -Infinity;
    let mn = Infinity;
    for (const v of s) {
      mx = Math.max(mx, v);
      mn = Math.min(mn, v);
    }
    const d = f(Math.sqrt(f(mx * mn)));
    for (let c = 0; c < n; c++) s[c] = f(s[c]! / d);
  }
  for (let c = 0; c < n; c++) if (!Number.isFinite(s[c]!)) s[c] = 1;
  return s;
}

/** The quantizer kinds AWQ's search can pseudo-quantize with. */
export function searchKind(args: QuantizationArgs): KernelKind {
  if (args.type === 'int') return 'int';
  if (args.type === 'float' && args.num_bits === 8) return 'fp8';
  throw new Error(`AWQ: ${args.type} ${args.num_bits}-bit weights are not supported by apply's AWQ`);
}

/** compressed-tensors' fake quantization of a whole weight with `p` (`_quantize_dequantize`). */
export function fakeQuantize(w: Float32Array, rows: number, cols: number, p: WeightQparams): Float32Array {
  const { layout, scale, zeroPoint, qmin, qmax, round } = p;
  const f = Math.fround;
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const base = Math.floor(r / layout.height) * layout.groups;
    for (let c = 0; c < cols; c++) {
      const i = base + Math.floor(c / layout.width);
      const s = scale[i]!;
      const x = w[r * cols + c]!;
      let v: number;
      if (p.kind === 'int') {
        const zp = zeroPoint ? zeroPoint[i]! : 0;
        // `x / scale` and `+ zero_point` are tensor ops of the weight dtype: each rounded to it.
        let y = round(f(x / s));
        if (zeroPoint) y = round(f(y + zp));
        v = round(f((roundHalfEven(Math.min(Math.max(y, qmin), qmax)) - zp) * s));
      } else if (p.kind === 'fp8') v = round(f(roundFp8E4m3(Math.min(Math.max(f(x / s), qmin), qmax)) * s));
      else {
        const eff = f(s / p.globalScale!);
        v = f(castFp4(Math.min(Math.max(f(x / eff), qmin), qmax)) * eff);
      }
      out[r * cols + c] = v;
    }
  }
  return out;
}

/**
 * The weight a balance layer holds during one grid point: `W·s` in the
 * weight dtype, pseudo-quantized with qparams observed on it (min-max,
 * whatever the scheme's observer), divided by `s` back into the weight dtype.
 */
export function searchWeight(w: BalanceWeight, s: Float64Array, dtype: WeightDtype): Float32Array {
  const args = w.args!;
  const { round } = dtypeFacts(dtype);
  const { rows, cols } = w;
  const scaled = new Float32Array(w.data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) scaled[r * cols + c] = round(w.data[r * cols + c]! * s[c]!);
  const layout = scaleLayout(args, rows, cols);
  const qp = weightQparams(searchKind(args), args, layout, groupStats(scaled, rows, cols, layout), dtype, null);
  const q = fakeQuantize(scaled, rows, cols, qp);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) q[r * cols + c] = round(q[r * cols + c]! / s[c]!);
  return q;
}

/** A balance weight with its input columns multiplied by the chosen scales, in the weight dtype. */
export function scaleColumns(data: Float32Array, rows: number, cols: number, s: Float64Array, round: (x: number) => number): Float32Array {
  const out = new Float32Array(data.length);
  if (round === roundBf16) {
    // roundBf16 takes its argument to float32 first: the float32 store, then the bits rounded in one pass.
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = data[r * cols + c]! * s[c]!;
    return roundBf16InPlace(out);
  }
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = round(data[r * cols + c]! * s[c]!);
  return out;
}

/**
 * The smooth layer divided by the scales: a norm weight elementwise, a
 * Linear's last `len(s)` output rows (all of them when sizes match; fused
 * qkv smoothing o_proj divides only v's rows), a bias alike.
 */
export function divideRows(data: Float32Array, rows: number, cols: number, s: Float64Array, round: (x: number) => number): Float32Array {
  const out = Float32Array.from(data);
  const first = rows - s.length;
  if (round === roundBf16) {
    for (let r = first; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = data[r * cols + c]! / s[r - first]!;
    roundBf16InPlace(out.subarray(first * cols));
    return out;
  }
  for (let r = first; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = round(data[r * cols + c]! / s[r - first]!);
  return out;
}
