/**
 * Reads one Linear weight as dense float32 `[out, in]`, whatever the
 * checkpoint stores: a plain bf16/f16/f32 `weight`, or a compressed-tensors
 * quantized form, dequantized exactly as compressed-tensors 0.18 does
 * (integer or FP code times scale in the scale's dtype, then rounded to the
 * model dtype bf16), so a quantized checkpoint runs as the weights vLLM sees.
 */
import { roundBf16, toFloat32 } from '../dtypes.js';
import { readTensorBytes, type CheckpointIndex, type TensorEntry } from '../safetensors-reader.js';

/** A dense float32 matrix, row-major. */
export interface DenseMatrix {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

/** A weight the executor cannot read; the message names the tensor. */
export class WeightFormatError extends Error {}

const FP4_VALUES = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

const FP8_TABLE = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const sign = b & 0x80 ? -1 : 1;
    const exp = (b >>> 3) & 0xf;
    const man = b & 7;
    if (exp === 15 && man === 7) t[b] = NaN;
    else if (exp === 0) t[b] = sign * man * 2 ** -9;
    else t[b] = sign * (1 + man / 8) * 2 ** (exp - 7);
  }
  return t;
})();

/** Any tensor as float32 values (floats widened, FP8 E4M3 decoded, integers converted, E8M0 as 2^(e-127)). */
export async function readAsFloat32(entry: TensorEntry, e8m0 = false): Promise<Float32Array> {
  const bytes = await readTensorBytes(entry);
  switch (entry.dtype) {
    case 'BF16':
    case 'F16':
    case 'F32':
      return toFloat32(bytes, entry.dtype);
    case 'F8_E4M3':
      return Float32Array.from(bytes, (b) => FP8_TABLE[b]!);
    case 'U8':
      return e8m0 ? Float32Array.from(bytes, (b) => 2 ** (b - 127)) : Float32Array.from(bytes);
    case 'I8':
      return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    case 'I32':
      return Float32Array.from(new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)));
    default:
      throw new WeightFormatError(`${entry.name}: dtype ${entry.dtype} cannot be read as a float tensor`);
  }
}

function need(index: CheckpointIndex, name: string): TensorEntry {
  const e = index.tensors.get(name);
  if (!e) throw new WeightFormatError(`the checkpoint has no tensor ${name}`);
  return e;
}

/** Unpacks compressed-tensors' int32 packing (`bits` per value, offset to unsigned) of `rows` rows of `cols` values. */
function unpackInt32(words: Int32Array, rows: number, cols: number, bits: number): Int32Array {
  const perRow = Math.ceil((cols * bits) / 32);
  const out = new Int32Array(rows * cols);
  const mask = (1 << bits) - 1;
  const offset = 1 << (bits - 1);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const bit = c * bits;
      const w = r * perRow + (bit >>> 5);
      const shift = bit & 31;
      let v = words[w]! >>> shift;
      if (shift + bits > 32) v |= words[w + 1]! << (32 - shift);
      out[r * cols + c] = (v & mask) - offset;
    }
  }
  return out;
}

/** Transposed unpack for zero points packed along dim 0: `[ceil(rows·bits/32), cols]` → `[rows, cols]`. */
function unpackInt32Dim0(words: Int32Array, rows: number, cols: number, bits: number): Int32Array {
  const packedRows = Math.ceil((rows * bits) / 32);
  const t = new Int32Array(packedRows * cols);
  for (let r = 0; r < packedRows; r++) for (let c = 0; c < cols; c++) t[c * packedRows + r] = words[r * cols + c]!;
  const unpacked = unpackInt32(t, cols, rows, bits);
  const out = new Int32Array(rows * cols);
  for (let c = 0; c < cols; c++) for (let r = 0; r < rows; r++) out[r * cols + c] = unpacked[c * rows + r]!;
  return out;
}

/** Scale of element (r, c) given a scale tensor of shape `[sr, sc]` over a `[rows, cols]` weight (per tensor, channel, group or block). */
function scaleIndexer(shape: readonly number[], rows: number, cols: number, gIdx: Int32Array | null = null): (r: number, c: number) => number {
  const sr = shape.length === 2 ? shape[0]! : 1;
  const sc = shape.length === 2 ? shape[1]! : 1;
  const rowBlock = Math.ceil(rows / sr);
  const colBlock = Math.ceil(cols / sc);
  // GPTQ group activation ordering: column c belongs to scale group g_idx[c] (-1 entries mean no reordering).
  if (gIdx && gIdx.length === cols && gIdx.every((g) => g >= 0 && g < sc)) return (r, c) => Math.floor(r / rowBlock) * sc + gIdx[c]!;
  return (r, c) => Math.floor(r / rowBlock) * sc + Math.floor(c / colBlock);
}

/** `<module>.weight_g_idx` (GPTQ group activation ordering), if the checkpoint has it. */
async function readGroupIndex(index: CheckpointIndex, module: string): Promise<Int32Array | null> {
  const entry = index.tensors.get(`${module}.weight_g_idx`);
  if (!entry) return null;
  if (entry.dtype !== 'I32' && entry.dtype !== 'I64') throw new WeightFormatError(`${module}.weight_g_idx: expected int32, got ${entry.dtype}`);
  const bytes = (await readTensorBytes(entry)).slice();
  return entry.dtype === 'I32' ? new Int32Array(bytes.buffer) : Int32Array.from(new BigInt64Array(bytes.buffer), Number);
}

/**
 * The dense weight of Linear `module` (e.g. `model.layers.0.self_attn.q_proj`).
 * Reads `weight` (bf16/f16/f32, or FP8/INT8 codes with `weight_scale`) or
 * `weight_packed` (pack-quantized int4/int8 with optional packed zero
 * points; NVFP4 with `weight_global_scale`; MXFP4 with E8M0 scales).
 */
export async function readLinear(index: CheckpointIndex, module: string, modelDtype: 'bfloat16' | 'float16' | 'float32' = 'bfloat16'): Promise<DenseMatrix> {
  const plain = index.tensors.get(`${module}.weight`);
  const packed = index.tensors.get(`${module}.weight_packed`);
  const scaleEntry = index.tensors.get(`${module}.weight_scale`);
  if (plain && (plain.dtype === 'BF16' || plain.dtype === 'F16' || plain.dtype === 'F32') && !scaleEntry) {
    const [rows, cols] = plain.shape as [number, number];
    return { data: await readAsFloat32(plain), rows, cols };
  }
  if (!scaleEntry) throw new WeightFormatError(`${module}: no plain weight and no weight_scale`);
  const mx = scaleEntry.dtype === 'U8';
  const scale = await readAsFloat32(scaleEntry, mx);
  const zpEntry = index.tensors.get(`${module}.weight_zero_point`);
  const gIdx = await readGroupIndex(index, module);
  let rows: number;
  let cols: number;
  let codes: Float32Array | Int32Array;
  let globalScale: number | null = null;
  if (plain) {
    [rows, cols] = plain.shape as [number, number];
    codes = await readAsFloat32(plain);
    if (zpEntry && plain.dtype === 'I8') {
      // Asymmetric int-quantized weights: unpacked int8 zero points, one per scale.
      const zp = await readAsFloat32(zpEntry);
      const at = scaleIndexer(scaleEntry.shape, rows, cols, gIdx);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) codes[r * cols + c]! -= zp[at(r, c)]!;
    }
  } else if (packed && packed.dtype === 'I32') {
    const shape = need(index, `${module}.weight_shape`);
    const dims = new BigInt64Array((await readTensorBytes(shape)).slice().buffer);
    rows = Number(dims[0]);
    cols = Number(dims[1]);
    const bits = Math.round((packed.shape[1]! * 32) / cols);
    const words = new Int32Array((await readTensorBytes(packed)).slice().buffer);
    codes = unpackInt32(words, rows, cols, bits);
    if (zpEntry) {
      const zpWords = new Int32Array((await readTensorBytes(zpEntry)).slice().buffer);
      const zp = unpackInt32Dim0(zpWords, rows, scaleEntry.shape[1]!, bits);
      const at = scaleIndexer(scaleEntry.shape, rows, cols, gIdx);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) codes[r * cols + c]! -= zp[at(r, c)]!;
    }
  } else if (packed && packed.dtype === 'U8') {
    [rows] = packed.shape as [number];
    cols = packed.shape[1]! * 2;
    const bytes = await readTensorBytes(packed);
    codes = new Float32Array(rows * cols);
    for (let i = 0; i < bytes.length; i++) {
      codes[2 * i] = FP4_VALUES[bytes[i]! & 0xf]!;
      codes[2 * i + 1] = FP4_VALUES[bytes[i]! >>> 4]!;
    }
    const gs = index.tensors.get(`${module}.weight_global_scale`);
    if (gs) globalScale = (await readAsFloat32(gs))[0]!;
  } else {
    throw new WeightFormatError(`${module}: unsupported quantized weight layout`);
  }
  const at = scaleIndexer(scaleEntry.shape, rows, cols, gIdx);
  const data = new Float32Array(rows * cols);
  // float16 models keep the float32 product (one rounding step away at most).
  const round = modelDtype === 'bfloat16' ? roundBf16 : (x: number) => x;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let s = scale[at(r, c)]!;
      if (globalScale !== null) s = Math.fround(s / globalScale);
      data[r * cols + c] = round(Math.fround(codes[r * cols + c]! * s));
    }
  }
  return { data, rows, cols };
}

/** A 1-D float tensor (norm weights, biases). */
export async function readVector(index: CheckpointIndex, name: string): Promise<Float32Array> {
  return readAsFloat32(need(index, name));
}
