/**
 * Size estimates from parameter shapes alone: bytes a module's weight takes
 * before quantization and the tensors compressed-tensors writes for it
 * after (reference layout: `weight_packed`, `weight_scale`, global scales,
 * zero points). Exact for the tensors' element counts; dtypes as saved.
 */
import { isGroupOrdering } from '../ir/quant-args.js';
import type { QuantizationArgs, QuantizationScheme } from '../ir/types.js';

const DTYPE_BYTES: Readonly<Record<string, number>> = {
  float32: 4,
  float: 4,
  float16: 2,
  half: 2,
  bfloat16: 2,
  float64: 8,
  float8_e4m3fn: 1,
  float8_e5m2: 1,
  int8: 1,
  uint8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  bool: 1,
};

/** Bytes per element of a torch dtype name (unknown → 2, the common bf16). */
export function dtypeBytes(dtype: string): number {
  return DTYPE_BYTES[dtype.replace(/^torch\./, '')] ?? 2;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Scales are stored in the weight's dtype when it is a float type compressed-tensors keeps, else fp16. */
function scaleBytes(weightDtype: string): number {
  const d = weightDtype.replace(/^torch\./, '');
  return d === 'bfloat16' || d === 'float16' || d === 'float32' ? dtypeBytes(d) : 2;
}

/**
 * Bytes of the tensors saved for one quantized 2-D weight `[rows, cols]`
 * (plus activation scales), for the given scheme and saved format.
 */
export function quantizedWeightBytes(shape: readonly number[], weightDtype: string, scheme: QuantizationScheme, format: string): number {
  const w = scheme.weights;
  if (!w || shape.length < 2) return numel(shape) * dtypeBytes(weightDtype);
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const cols = shape[shape.length - 1]!;
  const sb = scaleBytes(weightDtype);
  let bytes = 0;
  switch (format) {
    case 'pack-quantized':
      bytes += rows * Math.ceil((cols * w.num_bits) / 32) * 4 + 2 * 8; // weight_packed int32 + weight_shape int64[2]
      bytes += scaleCount(w, rows, cols) * sb;
      if (!w.symmetric) bytes += Math.ceil((rows * w.num_bits) / 32) * Math.max(1, scaleCount(w, rows, cols) / rows) * 4;
      break;
    case 'nvfp4-pack-quantized':
      bytes += rows * Math.ceil(cols / 2) + rows * Math.ceil(cols / 16) + 4;
      break;
    case 'mxfp4-pack-quantized':
      bytes += rows * Math.ceil(cols / 2) + rows * Math.ceil(cols / 32);
      break;
    case 'mxfp8-quantized':
      bytes += rows * cols + rows * Math.ceil(cols / 32);
      break;
    case 'int-quantized':
    case 'float-quantized':
    case 'naive-quantized':
      bytes += rows * cols * Math.ceil(w.num_bits / 8) + scaleCount(w, rows, cols) * sb;
      if (!w.symmetric) bytes += scaleCount(w, rows, cols) * Math.ceil(w.num_bits / 8);
      break;
    default:
      bytes += rows * cols * dtypeBytes(weightDtype);
  }
  if (isGroupOrdering(w.actorder)) bytes += cols * 4;
  bytes += activationScaleBytes(scheme.input_activations, sb, format);
  return bytes;
}

/** Number of weight scales a strategy produces. */
function scaleCount(w: QuantizationArgs, rows: number, cols: number): number {
  switch (w.strategy) {
    case 'tensor':
      return 1;
    case 'channel':
      return rows;
    case 'group':
    case 'tensor_group':
      return rows * Math.ceil(cols / (w.group_size ?? cols));
    case 'block': {
      const [br, bc] = w.block_structure ?? [128, 128];
      return Math.ceil(rows / br!) * Math.ceil(cols / bc!);
    }
    default:
      return rows;
  }
}

/** Static activation scales stored per module (dynamic ones store nothing). */
function activationScaleBytes(a: QuantizationArgs | null, sb: number, format: string): number {
  if (!a) return 0;
  if (format === 'nvfp4-pack-quantized') return 4; // input_global_scale float32 [1]
  if (a.dynamic === true) return 0;
  return sb + (a.symmetric ? 0 : sb);
}

/** Formats a byte count for people: `59.9 GB`, `512 MB`. Decimal units, as checkpoints are usually sized. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

/** Thousands separators: `8,832`. */
export function formatInt(n: number): string {
  return n.toLocaleString('en-US');
}
