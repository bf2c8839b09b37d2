/**
 * Where each quantized module's weight comes from: a 2-D `<module>.weight`
 * tensor, or one expert's slice of a fused 3-D experts parameter (read by
 * offset, so only that expert's bytes are loaded).
 */
import { DTYPE_BYTES, type SafetensorsDtype } from './dtypes.js';
import type { CheckpointIndex, FileRange, TensorEntry } from './safetensors-reader.js';
import { readTensorBytes } from './safetensors-reader.js';
import type { FusedExpertsParam } from './types.js';

/** A resolved weight: its entry and, for fused experts, which slice. */
export interface WeightSource {
  readonly entry: TensorEntry;
  readonly dtype: SafetensorsDtype;
  /** Shape of the Linear weight `[out, in]`. */
  readonly shape: readonly [number, number];
  readonly fused?: { readonly param: FusedExpertsParam; readonly expert: number; readonly projection: number };
  /** The module name the quantized tensors are written under, when it is not the module's own (Mixtral's original layout). */
  readonly writeAs?: string;
}

/** An expert projection as transformers 5 names it in memory. */
const EXPERT_PROJECTION = /^(.*)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)$/;
/** Mixtral's original names for the expert projections, which transformers 5 still writes. */
const ORIGINAL_PROJECTION: Readonly<Record<string, string>> = { gate_proj: 'w1', up_proj: 'w3', down_proj: 'w2' };
const PLAN_PROJECTION: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(ORIGINAL_PROJECTION).map(([k, v]) => [v, k]));

/**
 * A Mixtral-style checkpoint in its original layout stores expert `E` of a
 * layer as `block_sparse_moe.experts.E.w1/w3/w2`, which transformers 5 loads
 * as `mlp.experts`. llm-compressor writes the quantized experts back under
 * the stored block with transformers' projection names
 * (`block_sparse_moe.experts.E.gate_proj`), and so do we.
 */
function originalLayoutWeight(index: CheckpointIndex, module: string): WeightSource | null {
  const m = EXPERT_PROJECTION.exec(module);
  if (!m) return null;
  const [, layer, expert, projection] = m as unknown as [string, string, string, string];
  const entry = index.tensors.get(`${layer}.block_sparse_moe.experts.${expert}.${ORIGINAL_PROJECTION[projection]}.weight`);
  if (!entry || entry.shape.length !== 2) return null;
  return { entry, dtype: entry.dtype, shape: [entry.shape[0]!, entry.shape[1]!], writeAs: `${layer}.block_sparse_moe.experts.${expert}.${projection}` };
}

/**
 * The name llm-compressor saves tensor `name` under: an expert weight of
 * Mixtral's original layout (`block_sparse_moe.experts.E.w1/w3/w2.weight`)
 * with transformers' projection names, quantized or not, as its linearized
 * experts save them; other names unchanged.
 */
export function savedExpertName(index: CheckpointIndex, name: string): string {
  const m = /^(.*\.layers\.\d+)\.block_sparse_moe\.experts\.(\d+)\.(w[123])\.weight$/.exec(name);
  if (!m || !index.tensors.has(`${m[1]}.block_sparse_moe.gate.weight`)) return name;
  return `${m[1]}.block_sparse_moe.experts.${m[2]}.${PLAN_PROJECTION[m[3]!]}.weight`;
}

/**
 * The name transformers 5 gives a module of mixtral's original layout:
 * `…block_sparse_moe` is `…mlp`, and its experts' `w1/w3/w2` are
 * `gate_proj/up_proj/down_proj`. Other names are returned unchanged.
 */
export function inMemoryName(module: string): string {
  const m = /^(.*\.layers\.\d+)\.block_sparse_moe((?:\..*)?)$/.exec(module);
  if (!m) return module;
  const rest = m[2]!.replace(/^(\.experts\.\d+\.)(w[123])$/, (_, p: string, w: string) => p + PLAN_PROJECTION[w]!);
  return `${m[1]}.mlp${rest}`;
}

/**
 * The name `module` is written under in a checkpoint whose MoE blocks are
 * stored in Mixtral's original layout: transformers 5's `mlp` becomes the
 * stored `block_sparse_moe` again, as llm-compressor writes it (its ignore
 * list included). Other names are returned unchanged.
 */
export function storedBlockName(index: CheckpointIndex, module: string): string {
  const m = /^(.*\.layers\.\d+)\.mlp((?:\..*)?)$/.exec(module);
  if (!m || !index.tensors.has(`${m[1]}.block_sparse_moe.gate.weight`)) return module;
  return `${m[1]}.block_sparse_moe${m[2]}`;
}

/**
 * The checkpoint tensor of a fused experts parameter: under transformers 5's
 * name, or GraniteMoE's stored `block_sparse_moe.input_linear.weight` /
 * `output_linear.weight` (renamed `experts.gate_up_proj` / `experts.down_proj` on load).
 */
export function fusedEntry(index: CheckpointIndex, param: FusedExpertsParam): TensorEntry | undefined {
  const stored = param.tensor.replace(/\.experts\.gate_up_proj$/, '.input_linear.weight').replace(/\.experts\.down_proj$/, '.output_linear.weight');
  return index.tensors.get(param.tensor) ?? (/\.block_sparse_moe\./.test(stored) ? index.tensors.get(stored) : undefined);
}

/**
 * The fused parameter as its checkpoint stores it: transposed relative to
 * memory when the stored shape is the in-memory shape with its last two
 * dimensions swapped (transformers' `Transpose(1, 2, check_dims=True)`
 * transposes exactly when the shapes differ).
 */
export function storedTransposition(param: FusedExpertsParam, stored: readonly number[]): FusedExpertsParam {
  const m = param.shape;
  if (!m || m.length !== 3 || stored.length !== 3 || (stored[1] === m[1] && stored[2] === m[2])) return param;
  return stored[0] === m[0] && stored[1] === m[2] && stored[2] === m[1] ? { ...param, transposed: !param.transposed } : param;
}

/** Finds the weight of `module`, or null when the checkpoint has none. */
export function resolveWeight(index: CheckpointIndex, module: string, fused: readonly FusedExpertsParam[]): WeightSource | null {
  const direct = index.tensors.get(`${module}.weight`);
  if (direct) {
    if (direct.shape.length !== 2) return null;
    return { entry: direct, dtype: direct.dtype, shape: [direct.shape[0], direct.shape[1]] };
  }
  const original = originalLayoutWeight(index, module);
  if (original) return original;
  for (const param of fused) {
    if (!module.startsWith(param.expertsModule + '.')) continue;
    const [expertText, proj, ...rest] = module.slice(param.expertsModule.length + 1).split('.');
    const projection = param.projections.indexOf(proj ?? '');
    const entry = fusedEntry(index, param);
    if (rest.length > 0 || projection < 0 || !/^\d+$/.test(expertText) || !entry || entry.shape.length !== 3) continue;
    const expert = Number(expertText);
    const [e, d1, d2] = entry.shape as [number, number, number];
    if (expert >= e) continue;
    const stored = storedTransposition(param, entry.shape);
    const [outDim, inDim] = stored.transposed ? [d2, d1] : [d1, d2];
    const rows = outDim / param.projections.length;
    return { entry, dtype: entry.dtype, shape: [rows, inDim], fused: { param: stored, expert, projection } };
  }
  return null;
}

/** The file range of a fused weight's expert slab (`[d1, d2]` of the `[E, d1, d2]` parameter). */
export function slabRange(src: WeightSource): FileRange {
  const [, d1, d2] = src.entry.shape as [number, number, number];
  const slab = d1 * d2 * DTYPE_BYTES[src.entry.dtype];
  return { file: src.entry.file, offset: src.entry.offset + src.fused!.expert * slab, byteLength: slab, name: src.entry.name };
}

/** Side of the square tiles a transposed slice is copied in. */
const TILE = 64;

/**
 * One projection of an expert's slab stored `[in, out]` as a row-major
 * `[out, in]` matrix: its columns transposed, one element-sized word at a
 * time (projections stored `[out, in]` are read as their own rows, see
 * {@link weightRange}).
 */
export function transposedSlice(src: WeightSource, slab: Uint8Array): Uint8Array {
  const [, , d2] = src.entry.shape as [number, number, number];
  const el = DTYPE_BYTES[src.entry.dtype];
  const [rows, cols] = src.shape;
  const p = src.fused!.projection;
  const out = new Uint8Array(rows * cols * el);
  const view = (b: Uint8Array): Uint8Array | Uint16Array | Uint32Array =>
    el === 2 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2) : el === 4 ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4) : b;
  if (el === 1 || el === 2 || el === 4) {
    const from = view(slab.byteOffset % el === 0 ? slab : slab.slice());
    const to = view(out);
    // In tiles, so that the strided side of the copy stays in cache.
    for (let o0 = 0; o0 < rows; o0 += TILE) {
      const o1 = Math.min(rows, o0 + TILE);
      for (let i0 = 0; i0 < cols; i0 += TILE) {
        const i1 = Math.min(cols, i0 + TILE);
        for (let o = o0; o < o1; o++) {
          const row = o * cols;
          for (let i = i0, at = i0 * d2 + p * rows + o; i < i1; i++, at += d2) to[row + i] = from[at]!;
        }
      }
    }
    return out;
  }
  for (let i = 0; i < cols; i++) {
    for (let o = 0; o < rows; o++) {
      const at = (i * d2 + p * rows + o) * el;
      out.set(slab.subarray(at, at + el), (o * cols + i) * el);
    }
  }
  return out;
}

/**
 * The file range holding exactly the weight's bytes, row-major `[out, in]`:
 * a whole tensor, or one projection of an expert stored `[out, in]` (a run
 * of rows of its slab). Null for projections stored `[in, out]`, which are
 * read as a whole slab and transposed ({@link transposedSlice}).
 */
export function weightRange(src: WeightSource): FileRange | null {
  if (!src.fused) return src.entry;
  if (src.fused.param.transposed) return null;
  const slab = slabRange(src);
  const bytes = src.shape[0] * src.shape[1] * DTYPE_BYTES[src.entry.dtype];
  return { ...slab, offset: slab.offset + src.fused.projection * bytes, byteLength: bytes };
}

/** Reads the weight's bytes as a row-major `[out, in]` matrix; into `into` when given and the weight is one file range (its exact size, see {@link weightRange}). */
export async function readWeight(src: WeightSource, into?: Uint8Array | null): Promise<Uint8Array> {
  const range = weightRange(src);
  if (range) return readTensorBytes(range, into);
  return transposedSlice(src, await readTensorBytes(slabRange(src)));
}
