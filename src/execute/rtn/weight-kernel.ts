/**
 * How one weight tensor is quantized and saved, decided from its scheme
 * before any data is read: the kernel (integer, FP8, MX or NVFP4), the
 * grouping of values that share a scale, and the exact tensors written for
 * the module (names, dtypes, shapes) as compressed-tensors 0.18 saves them.
 */
import type { QuantizationArgs, QuantizationScheme } from '../../ir/types.js';
import { DTYPE_BYTES, type SafetensorsDtype } from '../dtypes.js';

/** The float dtypes a quantized weight may have on input. */
export type WeightDtype = 'BF16' | 'F16' | 'F32';

/** The numeric recipe for one weight. */
export type KernelKind = 'int' | 'fp8' | 'mxfp4' | 'mxfp8' | 'nvfp4';

/** compressed-tensors formats the executor writes. */
export type CompressionFormat = 'pack-quantized' | 'int-quantized' | 'float-quantized' | 'naive-quantized' | 'mxfp4-pack-quantized' | 'mxfp8-quantized' | 'nvfp4-pack-quantized';

/**
 * A weight `[N, K]` viewed as `[a, b, c]` (or `[a, bh, c, bw]` for blocks)
 * so that every scale covers one reduction over the last (or 2nd and 4th) axis.
 */
export interface GroupView {
  readonly dims: readonly number[];
  /** Axes reduced by the observer. */
  readonly reduceAxes: readonly number[];
  /** Shape of the scale tensor as saved. */
  readonly scaleShape: readonly number[];
  /** Rows/cols after zero padding (blocks only; otherwise N, K). */
  readonly padded: readonly [number, number];
}

/** Everything needed to quantize and save one Linear weight. */
export interface WeightKernel {
  readonly kind: KernelKind;
  readonly format: CompressionFormat;
  readonly args: QuantizationArgs;
  readonly dtype: WeightDtype;
  readonly shape: readonly [number, number];
  readonly view: GroupView;
  /** Tensors written for the module, suffixes after `<module>.`, in name order. */
  readonly outputs: readonly { readonly suffix: string; readonly dtype: SafetensorsDtype; readonly shape: readonly number[]; readonly byteLength: number }[];
}

/** Why a scheme cannot run data-free here; the message is user-facing. */
export class UnsupportedSchemeError extends Error {}

/** compressed-tensors `infer_module_format` for a Linear module (first match wins). */
export function inferFormat(scheme: QuantizationScheme): CompressionFormat | 'dense' {
  const w = scheme.weights;
  const ia = scheme.input_activations;
  if (scheme.format) return scheme.format as CompressionFormat;
  if (!w) return 'dense';
  if (w.type === 'float' && w.num_bits === 4 && w.group_size === 32) return 'mxfp4-pack-quantized';
  if (w.type === 'float' && w.num_bits === 8 && w.group_size === 32 && isUint8(w.scale_dtype)) return 'mxfp8-quantized';
  if (w.type === 'float' && w.num_bits === 4 && w.group_size === 16) return 'nvfp4-pack-quantized';
  if (w.type === 'int' && ia) return 'int-quantized';
  if (w.type === 'int' && w.num_bits >= 1 && w.num_bits <= 8 && !(ia && ia.type === 'float')) return 'pack-quantized';
  if (w.type === 'float' && ia) return 'float-quantized';
  return 'naive-quantized';
}

function isUint8(dtype: string | null): boolean {
  return dtype === 'torch.uint8' || dtype === 'uint8';
}

function groupView(args: QuantizationArgs, n: number, k: number): GroupView {
  switch (args.strategy) {
    case 'tensor':
      return { dims: [1, 1, n * k], reduceAxes: [2], scaleShape: [1], padded: [n, k] };
    case 'channel':
      return { dims: [n, 1, k], reduceAxes: [2], scaleShape: [n, 1], padded: [n, k] };
    case 'group':
    case 'tensor_group': {
      const g = args.group_size ?? 0;
      if (g <= 0 || k % g !== 0) throw new UnsupportedSchemeError(`weight columns ${k} are not divisible by group_size ${g}`);
      return { dims: [n, k / g, g], reduceAxes: [2], scaleShape: [n, k / g], padded: [n, k] };
    }
    case 'block': {
      const [bh, bw] = args.block_structure ?? [0, 0];
      if (!(bh > 0 && bw > 0)) throw new UnsupportedSchemeError('block strategy needs block_structure');
      const rows = Math.ceil(n / bh);
      const cols = Math.ceil(k / bw);
      return { dims: [rows, bh, cols, bw], reduceAxes: [1, 3], scaleShape: [rows, cols], padded: [rows * bh, cols * bw] };
    }
    default:
      throw new UnsupportedSchemeError(`weight strategy ${String(args.strategy)} is not supported`);
  }
}

function out(suffix: string, dtype: SafetensorsDtype, shape: readonly number[]): WeightKernel['outputs'][number] {
  return { suffix, dtype, shape, byteLength: shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype] };
}

/**
 * Plans the quantization of one weight of `shape` and `dtype` under `scheme`.
 * Only the weight arguments matter here (calibrated activation tensors are
 * computed before the weight pass). Throws {@link UnsupportedSchemeError}
 * for weights that need an algorithm or that compressed-tensors cannot save.
 */
export function planWeightKernel(scheme: QuantizationScheme, shape: readonly number[], dtype: SafetensorsDtype): WeightKernel {
  const args = scheme.weights;
  if (!args) throw new UnsupportedSchemeError('scheme has no weights quantization');
  if (shape.length !== 2) throw new UnsupportedSchemeError(`expected a 2-D weight, got shape [${shape.join(', ')}]`);
  if (dtype !== 'BF16' && dtype !== 'F16' && dtype !== 'F32') throw new UnsupportedSchemeError(`weights of dtype ${dtype} cannot be quantized (bf16, fp16 and fp32 can)`);
  if (args.dynamic !== false) throw new UnsupportedSchemeError('dynamic weight quantization is not supported');
  if (args.actorder) throw new UnsupportedSchemeError('activation ordering needs GPTQ calibration');
  const [n, k] = shape as [number, number];
  const format = inferFormat(scheme);
  if (format === 'dense') throw new UnsupportedSchemeError('scheme has no weights quantization');
  const view = groupView(args, n, k);
  const scaleDtype: SafetensorsDtype = dtype;
  const kind = kernelKind(args, format);
  let outputs: WeightKernel['outputs'];
  switch (format) {
    case 'pack-quantized': {
      const bits = args.num_bits;
      const list = [out('weight_packed', 'I32', [n, Math.ceil((k * bits) / 32)]), out('weight_scale', scaleDtype, view.scaleShape), out('weight_shape', 'I64', [2])];
      if (!args.symmetric && (args.strategy === 'group' || args.strategy === 'channel')) {
        list.push(out('weight_zero_point', 'I32', [Math.ceil((n * bits) / 32), view.scaleShape[1] ?? 1]));
      }
      outputs = list;
      break;
    }
    case 'int-quantized':
    case 'float-quantized':
    case 'naive-quantized': {
      const list = [out('weight', args.type === 'int' ? 'I8' : 'F8_E4M3', [n, k]), out('weight_scale', scaleDtype, view.scaleShape)];
      if (!args.symmetric) list.push(out('weight_zero_point', 'I8', view.scaleShape));
      outputs = list;
      break;
    }
    case 'mxfp4-pack-quantized':
      outputs = [out('weight_packed', 'U8', [n, k / 2]), out('weight_scale', 'U8', view.scaleShape)];
      break;
    case 'mxfp8-quantized':
      outputs = [out('weight', 'F8_E4M3', [n, k]), out('weight_scale', 'U8', view.scaleShape)];
      break;
    case 'nvfp4-pack-quantized':
      outputs = [out('weight_global_scale', 'F32', [1]), out('weight_packed', 'U8', [n, k / 2]), out('weight_scale', 'F8_E4M3', view.scaleShape)];
      break;
  }
  return { kind, format, args, dtype, shape: [n, k], view, outputs };
}

function kernelKind(args: QuantizationArgs, format: CompressionFormat): KernelKind {
  if (args.type === 'int') {
    if (args.num_bits > 8) throw new UnsupportedSchemeError(`${args.num_bits}-bit integer weights are not supported`);
    return 'int';
  }
  if (format === 'mxfp4-pack-quantized') return 'mxfp4';
  if (format === 'mxfp8-quantized') return 'mxfp8';
  if (format === 'nvfp4-pack-quantized') {
    if (args.strategy !== 'tensor_group') throw new UnsupportedSchemeError('NVFP4 weights need the tensor_group strategy');
    return 'nvfp4';
  }
  if (args.num_bits === 8) return 'fp8';
  throw new UnsupportedSchemeError(`${args.num_bits}-bit float weights are only supported as NVFP4 or MXFP4`);
}
