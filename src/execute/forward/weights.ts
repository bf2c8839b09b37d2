/**
 * Weight access for graph construction: one checkpoint, read tensor by
 * tensor (dequantized when compressed), so building a layer's graph holds
 * only that layer's weights.
 */
import type { CheckpointIndex } from '../safetensors-reader.js';
import { readAsFloat32, readLinear, readVector, type DenseMatrix } from './dequantize.js';

/** Reads the weights of one model folder. */
export class WeightReader {
  constructor(
    readonly index: CheckpointIndex,
    private readonly dtype: 'bfloat16' | 'float16' | 'float32',
  ) {}

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

  /** A 1-D tensor (norm weight, bias). */
  vector(name: string): Promise<Float32Array> {
    return readVector(this.index, name);
  }

  /** A 1-D tensor, or undefined when absent. */
  async optionalVector(name: string): Promise<Float32Array | undefined> {
    return this.has(name) ? this.vector(name) : undefined;
  }

  /** A dense 2-D matrix stored as a plain tensor (embeddings). */
  async matrix(name: string): Promise<DenseMatrix> {
    const entry = this.index.tensors.get(name);
    if (!entry || entry.shape.length !== 2) return this.linear(name.replace(/\.weight$/, ''));
    return { data: await readAsFloat32(entry), rows: entry.shape[0]!, cols: entry.shape[1]! };
  }
}
