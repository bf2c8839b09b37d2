/**
 * GPTQ's quantizer: the scales (and zero points, global scale) of one
 * weight, observed once on the whole original weight before the column loop
 * as llm-compressor does, and the fake quantization of one column with them
 * (compressed-tensors' `_quantize_dequantize` order: divide, add the zero
 * point, clamp, round, dequantize in the scale's dtype).
 */
import type { QuantizationArgs } from '../../ir/types.js';
import { dtypeFacts, fp8Qparams, intQparams, nvfp4GlobalScale, nvfp4Qparams, roundFp8E4m3, roundHalfEven } from '../rtn/qparams.js';
import type { KernelKind, WeightDtype } from '../rtn/weight-kernel.js';

/** Per-group min/max of a weight, laid out as its scales are. */
export interface GroupStats {
  readonly min: Float32Array;
  readonly max: Float32Array;
  /** Whether every element observed was finite (where the statistics were taken from the weight itself). */
  readonly finite?: boolean;
}

/** How columns map to scale groups. */
export interface ScaleLayout {
  /** Scale groups per row of the scale tensor (1 for tensor and channel). */
  readonly groups: number;
  /** Columns per group (`group_size`, block width, or all columns). */
  readonly width: number;
  /** Weight rows per scale row (1, block height, or all rows for tensor). */
  readonly height: number;
}

/** The scale layout of `args` for a `[rows, cols]` weight. */
export function scaleLayout(args: QuantizationArgs, rows: number, cols: number): ScaleLayout {
  switch (args.strategy) {
    case 'tensor':
      return { groups: 1, width: cols, height: rows };
    case 'channel':
      return { groups: 1, width: cols, height: 1 };
    case 'group':
    case 'tensor_group': {
      const gs = args.group_size ?? cols;
      return { groups: Math.ceil(cols / gs), width: gs, height: 1 };
    }
    case 'block': {
      const [bh, bw] = args.block_structure ?? [rows, cols];
      return { groups: Math.ceil(cols / bw!), width: bw!, height: bh! };
    }
    default:
      throw new Error(`Quantization strategy is not supported for GPTQ: ${String(args.strategy)}`);
  }
}

/**
 * Min/max per scale group of a row-major `[rows, cols]` weight whose columns
 * are taken in the order `columns` (identity when omitted), grouped
 * consecutively in that order (group activation ordering observes the
 * permuted weight); `finite` says whether every element is finite.
 */
export function groupStats(w: ArrayLike<number>, rows: number, cols: number, layout: ScaleLayout, columns?: ArrayLike<number>): GroupStats {
  const scaleRows = Math.ceil(rows / layout.height);
  const { groups, width, height } = layout;
  const n = scaleRows * groups;
  const min = new Float32Array(n).fill(Infinity);
  const max = new Float32Array(n).fill(-Infinity);
  // `v · 0` is NaN for a NaN or an infinity and 0 otherwise: one sum says whether any element is not finite.
  let poison = 0;
  for (let r = 0; r < rows; r++) {
    const base = Math.floor(r / height) * groups;
    const row = r * cols;
    // One group's run of columns at a time, its range kept in locals (rounding to float32 is monotonic, so
    // the stored min and max are those an element-wise update of the float32 arrays would leave).
    for (let g = 0, j0 = 0; j0 < cols; g++, j0 += width) {
      const end = Math.min(j0 + width, cols);
      let lo = min[base + g]!;
      let hi = max[base + g]!;
      if (columns) {
        for (let j = j0; j < end; j++) {
          const v = w[row + columns[j]!]!;
          poison += v * 0;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      } else {
        for (let j = j0; j < end; j++) {
          const v = w[row + j]!;
          poison += v * 0;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
      min[base + g] = lo;
      max[base + g] = hi;
    }
  }
  // Zero padding of partial blocks needs no care: qparams widen every range to include 0.
  return { min, max, finite: poison === 0 };
}

/** Absolute maximum over statistics (NVFP4 global scales). */
export function statsAbsMax(s: GroupStats): number {
  let m = 0;
  for (let i = 0; i < s.min.length; i++) m = Math.max(m, -s.min[i]!, s.max[i]!);
  return m;
}

/** The NVFP4 global scale of a fused group of weights from each member's statistics. */
export function fusedNvfp4GlobalScale(members: readonly GroupStats[], dtype: WeightDtype): number {
  return nvfp4GlobalScale(Math.max(...members.map(statsAbsMax)), dtype);
}

/** Scales and zero points of one weight, in compressed-tensors' arithmetic. */
export interface WeightQparams {
  readonly kind: KernelKind;
  readonly layout: ScaleLayout;
  /** One per scale group, as float values of the scale dtype. */
  readonly scale: Float32Array;
  readonly zeroPoint: Float32Array | null;
  readonly globalScale: number | null;
  readonly qmin: number;
  readonly qmax: number;
  /** Rounds a dequantized value to the scale's dtype. */
  readonly round: (x: number) => number;
}

/**
 * Computes the qparams of a weight from its group statistics, in `dtype`
 * arithmetic (the model dtype; group actorder observes in float32).
 */
export function weightQparams(kind: KernelKind, args: QuantizationArgs, layout: ScaleLayout, stats: GroupStats, dtype: WeightDtype, globalScale: number | null): WeightQparams {
  switch (kind) {
    case 'int': {
      const { scale, zeroPoint } = intQparams(stats.min, stats.max, args.num_bits, args.symmetric, dtype);
      return { kind, layout, scale, zeroPoint, globalScale: null, qmin: -(2 ** (args.num_bits - 1)), qmax: 2 ** (args.num_bits - 1) - 1, round: dtypeFacts(dtype).round };
    }
    case 'fp8':
      return { kind, layout, scale: fp8Qparams(stats.min, stats.max, dtype), zeroPoint: null, globalScale: null, qmin: -448, qmax: 448, round: dtypeFacts(dtype).round };
    case 'nvfp4': {
      if (globalScale === null) throw new Error('NVFP4 needs a global scale');
      // The fp32 global scale promotes the scale arithmetic to float32.
      return { kind, layout, scale: nvfp4Qparams(stats.min, stats.max, globalScale, dtype), zeroPoint: null, globalScale, qmin: -6, qmax: 6, round: Math.fround };
    }
    default:
      throw new Error(`${kind} weights are not supported by GPTQ`);
  }
}

/** compressed-tensors' eager FP4 E2M1 rounding (`cast_to_fp4`). */
export function castFp4(x: number): number {
  const a = Math.abs(x);
  let q: number;
  if (a <= 0.25) q = 0;
  else if (a < 0.75) q = 0.5;
  else if (a <= 1.25) q = 1;
  else if (a < 1.75) q = 1.5;
  else if (a <= 2.5) q = 2;
  else if (a < 3.5) q = 3;
  else if (a <= 5) q = 4;
  else q = 6;
  return x < 0 ? -q : q;
}

/**
 * Fake-quantizes column `w` (`rows` values, float32 arithmetic) with scale
 * group `group` of each row, writing the dequantized values to `out`.
 */
export function quantizeColumn(p: WeightQparams, w: ArrayLike<number>, rows: number, group: number, out: Float64Array): void {
  const { layout, scale, zeroPoint, qmin, qmax, round } = p;
  const f = Math.fround;
  for (let r = 0; r < rows; r++) {
    const i = Math.floor(r / layout.height) * layout.groups + group;
    const s = scale[i]!;
    const x = f(w[r]!);
    let q: number;
    switch (p.kind) {
      case 'int': {
        const zp = zeroPoint ? zeroPoint[i]! : 0;
        let y = f(x / s);
        if (zeroPoint) y = f(y + zp);
        q = roundHalfEven(Math.min(Math.max(y, qmin), qmax));
        out[r] = round(f((q - zp) * s));
        break;
      }
      case 'fp8':
        q = roundFp8E4m3(Math.min(Math.max(f(x / s), qmin), qmax));
        out[r] = round(f(q * s));
        break;
      default: {
        const eff = f(s / p.globalScale!);
        q = castFp4(Math.min(Math.max(f(x / eff), qmin), qmax));
        out[r] = f(q * eff);
      }
    }
  }
}
