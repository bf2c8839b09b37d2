/**
 * Where each quantized module's weight comes from: a 2-D `<module>.weight`
 * tensor, or one expert's slice of a fused 3-D experts parameter (read by
 * offset, so only that expert's bytes are loaded).
 */
import { open } from 'node:fs/promises';
import { DTYPE_BYTES, type SafetensorsDtype } from './dtypes.js';
import type { CheckpointIndex, TensorEntry } from './safetensors-reader.js';
import { readTensorBytes } from './safetensors-reader.js';
import type { FusedExpertsParam } from './types.js';

/** A resolved weight: its entry and, for fused experts, which slice. */
export interface WeightSource {
  readonly entry: TensorEntry;
  readonly dtype: SafetensorsDtype;
  /** Shape of the Linear weight `[out, in]`. */
  readonly shape: readonly [number, number];
  readonly fused?: { readonly param: FusedExpertsParam; readonly expert: number; readonly projection: number };
}

/** Finds the weight of `module`, or null when the checkpoint has none. */
export function resolveWeight(index: CheckpointIndex, module: string, fused: readonly FusedExpertsParam[]): WeightSource | null {
  const direct = index.tensors.get(`${module}.weight`);
  if (direct) {
    if (direct.shape.length !== 2) return null;
    return { entry: direct, dtype: direct.dtype, shape: [direct.shape[0], direct.shape[1]] };
  }
  for (const param of fused) {
    if (!module.startsWith(param.expertsModule + '.')) continue;
    const [expertText, proj, ...rest] = module.slice(param.expertsModule.length + 1).split('.');
    const projection = param.projections.indexOf(proj ?? '');
    const entry = index.tensors.get(param.tensor);
    if (rest.length > 0 || projection < 0 || !/^\d+$/.test(expertText) || !entry || entry.shape.length !== 3) continue;
    const expert = Number(expertText);
    const [e, d1, d2] = entry.shape as [number, number, number];
    if (expert >= e) continue;
    const [outDim, inDim] = param.transposed ? [d2, d1] : [d1, d2];
    const rows = outDim / param.projections.length;
    return { entry, dtype: entry.dtype, shape: [rows, inDim], fused: { param, expert, projection } };
  }
  return null;
}

/** Reads the weight's bytes as a row-major `[out, in]` matrix. */
export async function readWeight(src: WeightSource): Promise<Uint8Array> {
  if (!src.fused) return readTensorBytes(src.entry);
  const { entry } = src;
  const [, d1, d2] = entry.shape as [number, number, number];
  const el = DTYPE_BYTES[entry.dtype];
  const slab = d1 * d2 * el;
  const buf = new Uint8Array(slab);
  const fh = await open(entry.file, 'r');
  try {
    await fh.read(buf, 0, slab, entry.offset + src.fused.expert * slab);
  } finally {
    await fh.close();
  }
  const [rows, cols] = src.shape;
  const p = src.fused.projection;
  if (!src.fused.param.transposed) return buf.slice(p * rows * cols * el, (p + 1) * rows * cols * el);
  // Stored [in, out]: take this projection's columns and transpose them.
  const out = new Uint8Array(rows * cols * el);
  for (let i = 0; i < cols; i++) {
    for (let o = 0; o < rows; o++) {
      const from = (i * d2 + p * rows + o) * el;
      out.set(buf.subarray(from, from + el), (o * cols + i) * el);
    }
  }
  return out;
}
