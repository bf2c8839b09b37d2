/**
 * The run-time side of graphs that feed their weights (see `WeightFeeds`):
 * the tensors a run supplies, and the session key that lets same-shaped
 * layers share one session.
 */
import { createHash } from 'node:crypto';
import { OnnxType, type WeightFeeds } from '../onnx/graph-builder.js';
import type { RawTensor } from '../runtime.js';
import { readTensorBytes } from '../safetensors-reader.js';

/** A typed view of `bytes`, copied only where its offset does not allow one. */
function view<T>(bytes: Uint8Array, size: number, make: (buffer: ArrayBufferLike, offset: number, length: number) => T): T {
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return make(b.buffer, b.byteOffset, b.byteLength / size);
}

/** The tensors a run of a graph built with `feeds` supplies (weights stored in a file are read here, once). */
export async function feedTensors(feeds: WeightFeeds): Promise<Record<string, RawTensor>> {
  const out: Record<string, RawTensor> = {};
  for (const f of feeds.entries) {
    const bytes = f.raw instanceof Uint8Array ? f.raw : await readTensorBytes(f.raw);
    if (f.elemType === OnnxType.float) out[f.name] = { type: 'float32', data: view(bytes, 4, (b, o, n) => new Float32Array(b, o, n)), dims: f.dims };
    else if (f.elemType === OnnxType.uint16) out[f.name] = { type: 'uint16', data: view(bytes, 2, (b, o, n) => new Uint16Array(b, o, n)), dims: f.dims };
    else throw new TypeError(`weights of ONNX type ${f.elemType} cannot be fed`);
  }
  return out;
}

/** A session key for graph `bytes` that depends only on them: same-shaped layers that feed their weights build the same bytes. */
export function structureKey(prefix: string, bytes: Uint8Array): string {
  return `${prefix}_${createHash('sha1').update(bytes).digest('hex').slice(0, 16)}`;
}
