/**
 * Weight access for graph construction: one checkpoint, read tensor by
 * tensor (dequantized when compressed), so building a layer's graph holds
 * only that layer's weights.
 */
import { DTYPE_BYTES, roundBf16InPlace, roundF16, toFloat32, uint16View } from '../dtypes.js';
import { keptInFloat32 } from '../saved-dtype.js';
import { readTensorBytes, type CheckpointIndex } from '../safetensors-reader.js';
import { readAsFloat32, readLinear, readVector, type DenseMatrix } from './dequantize.js';
import type { InputPart, InputQuantizer, SliceQuantizer } from './input-quantizer.js';
import type { Bf16Matrix } from './ops.js';

/** Where a checkpoint stores the causal LM's base model and head. */
export interface LanguageModelNames {
  /** The base model (embed_tokens, layers, norm): `model`, `language_model.model` (Llama 4, stored Llava-layout models), `model.language_model` or `model.text_model` (Idefics3). */
  readonly model: string;
  /** The output head: `lm_head` or `language_model.lm_head`. */
  readonly head: string;
}

/** A causal LM's own names. */
export const CAUSAL_LM_NAMES: LanguageModelNames = { model: 'model', head: 'lm_head' };

/** Rows of a 2-D tensor (an embedding table) as {@link WeightReader.rowReader} gives them. */
export interface RowReader {
  readonly rows: number;
  readonly cols: number;
  /** Writes row `i`'s float32 values into `dest` from `at`. */
  rowInto(i: number, dest: Float32Array, at: number): void;
  /** The table's 16-bit elements as stored (`[rows, cols]`), where it is stored as bf16 or fp16. */
  readonly stored?: { readonly dtype: 'bfloat16' | 'float16'; readonly bits: Uint16Array };
}

/** Reads the weights of one model folder. */
export class WeightReader {
  constructor(
    readonly index: CheckpointIndex,
    readonly dtype: 'bfloat16' | 'float16' | 'float32',
    /** Where the causal LM's tensors live (a multimodal checkpoint stores them under its language model). */
    readonly names: LanguageModelNames = CAUSAL_LM_NAMES,
  ) {}

  /**
   * Whether this reader serves weights other than the checkpoint's own (a
   * modifier's replacements, simulated quantization): graphs then copy
   * them in rather than reference the files.
   */
  get changed(): boolean {
    return false;
  }

  /** The Linear weight of `module` as a modifier replaced it (see `OverlayWeights`); undefined for a checkpoint's own. */
  replacement(_module: string): DenseMatrix | undefined {
    return undefined;
  }

  /**
   * The kv-cache fake quantization of an attention's keys or values (served-model simulation, see `SimulatingWeights`); none for a plain reader.
   * For the layer graph builders.
   * @internal
   */
  async cacheQuantizer(_attention: string, _which: 'k' | 'v'): Promise<InputQuantizer | undefined> {
    return undefined;
  }

  /**
   * The fake quantization of Linear `module`'s input for graphs that read
   * its weight with {@link linear} rather than {@link linearWeight} (MLPs
   * split across graphs, experts), applied to `part` of the input; none for
   * a plain reader. For the layer graph builders.
   * @internal
   */
  async inputQuantizer(_module: string, _part: InputPart): Promise<SliceQuantizer | undefined> {
    return undefined;
  }

  /** Whether tensor `name` exists. */
  has(name: string): boolean {
    return this.index.tensors.has(name);
  }

  /** Whether Linear `module` has a weight in any stored form. */
  hasLinear(module: string): boolean {
    return this.has(`${module}.weight`) || this.has(`${module}.weight_packed`);
  }

  /** The dense `[out, in]` weight of Linear `module`. */
  linear(module: string): Promise<DenseMatrix> {
    return readLinear(this.index, module, this.dtype);
  }

  /**
   * The `[out, in]` weight of Linear `module` for a graph: a plain bf16
   * weight as where its stored bits lie in the checkpoint (read straight
   * into the graph bytes when the graph is built; the graph widens them),
   * anything else dense float32 as {@link linear} reads it.
   */
  async linearWeight(module: string): Promise<DenseMatrix | Bf16Matrix> {
    const plain = this.index.tensors.get(`${module}.weight`);
    if (plain?.dtype === 'BF16' && plain.shape.length === 2 && !this.has(`${module}.weight_scale`)) {
      return { bf16: { file: plain.file, offset: plain.offset, byteLength: plain.byteLength }, rows: plain.shape[0]!, cols: plain.shape[1]! };
    }
    return this.linear(module);
  }

  /**
   * The dtype the model is loaded in, where not float32: float32 vectors
   * are then read rounded to it (see {@link vector}). The forward model sets
   * it with its precision; null (float32, as stored) otherwise.
   */
  get loadedAs(): 'bfloat16' | 'float16' | null {
    return this.loaded;
  }

  set loadedAs(dtype: 'bfloat16' | 'float16' | null) {
    this.loaded = dtype;
  }

  private loaded: 'bfloat16' | 'float16' | null = null;

  /**
   * A 1-D tensor (norm weight, bias), as transformers loads it: a float32
   * tensor of a model loaded in bf16 or fp16 ({@link loadedAs}) rounded to
   * that dtype, unless its class keeps it in float32.
   */
  async vector(name: string): Promise<Float32Array> {
    const v = await readVector(this.index, name);
    if (this.loadedAs === null || this.index.tensors.get(name)?.dtype !== 'F32' || keptInFloat32(name)) return v;
    return this.loadedAs === 'bfloat16' ? roundBf16InPlace(v) : v.map(roundF16);
  }

  /** An RMSNorm's scale: its weight, or `1 + weight` (float32) for zero-centred norms. */
  async normScale(name: string, zeroCentred: boolean): Promise<Float32Array> {
    const v = await this.vector(name);
    return zeroCentred ? v.map((x) => Math.fround(1 + x)) : v;
  }

  /** A 1-D tensor, or undefined when absent. */
  async optionalVector(name: string): Promise<Float32Array | undefined> {
    return this.has(name) ? this.vector(name) : undefined;
  }

  /**
   * Rows `[start, start + count)` of the first dimension of a bf16/f16/f32
   * tensor, as float32 (one expert range of a fused experts tensor, without
   * reading the others).
   */
  async slice(name: string, start: number, count: number): Promise<Float32Array> {
    const entry = this.index.tensors.get(name);
    if (!entry || (entry.dtype !== 'BF16' && entry.dtype !== 'F16' && entry.dtype !== 'F32')) return (await this.vector(name)).slice();
    const rowBytes = entry.byteLength / entry.shape[0]!;
    const buf = await readTensorBytes({ name: `${name} rows ${start}..${start + count - 1}`, file: entry.file, offset: entry.offset + start * rowBytes, byteLength: count * rowBytes });
    return toFloat32(buf, entry.dtype);
  }

  /** Bytes per element of tensor `name` as stored (for size estimates), 2 when unknown. */
  elementBytes(name: string): number {
    const entry = this.index.tensors.get(name);
    return entry ? DTYPE_BYTES[entry.dtype] : 2;
  }

  /**
   * Row lookup into a 2-D tensor kept in its stored form (bf16 embeddings
   * stay half the size of float32); rows are widened on demand.
   */
  async rowReader(name: string): Promise<RowReader> {
    const entry = this.index.tensors.get(name);
    if (!entry || entry.shape.length !== 2 || (entry.dtype !== 'BF16' && entry.dtype !== 'F16' && entry.dtype !== 'F32')) {
      const m = await this.matrix(name);
      return { rows: m.rows, cols: m.cols, rowInto: (i, dest, at) => dest.set(m.data.subarray(i * m.cols, (i + 1) * m.cols), at) };
    }
    const [rows, cols] = entry.shape as [number, number];
    const bytes = await readTensorBytes(entry);
    const dtype = entry.dtype;
    if (dtype !== 'BF16') {
      // Widened row by row: the table stays in its stored form.
      const rowBytes = cols * DTYPE_BYTES[dtype];
      const rowInto = (i: number, dest: Float32Array, at: number): void => dest.set(toFloat32(bytes.subarray(i * rowBytes, (i + 1) * rowBytes), dtype), at);
      return { rows, cols, rowInto, ...(dtype === 'F16' ? { stored: { dtype: 'float16' as const, bits: uint16View(bytes) } } : {}) };
    }
    const bits = uint16View(bytes);
    // A bf16 value is the high half of its float32: written straight into place (no array per row).
    const rowInto = (i: number, dest: Float32Array, at: number): void => {
      const out = new Uint32Array(dest.buffer, dest.byteOffset + at * 4, cols);
      const base = i * cols;
      for (let j = 0; j < cols; j++) out[j] = bits[base + j]! << 16;
    };
    return { rows, cols, rowInto, stored: { dtype: 'bfloat16', bits } };
  }

  /** A dense 2-D matrix stored as a plain tensor (embeddings). */
  async matrix(name: string): Promise<DenseMatrix> {
    const entry = this.index.tensors.get(name);
    if (!entry || entry.shape.length !== 2) return this.linear(name.replace(/\.weight$/, ''));
    return { data: await readAsFloat32(entry), rows: entry.shape[0]!, cols: entry.shape[1]! };
  }
}
