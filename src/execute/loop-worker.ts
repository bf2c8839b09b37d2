/**
 * A worker thread of the CPU weight pass: quantizes units in the CPU loops
 * (`rtn/cpu-kernel.ts`) while the main thread writes. Raw weights arrive
 * as transferred buffers, or as weight sources the worker reads itself into
 * buffers it keeps (so the cores read beside each other and the main thread
 * only writes); tensors leave as transferred buffers (no copies).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BufferPool } from './buffer-pool.js';
import { NonFiniteWeightError, quantizeUnit, type UnitModule } from './quantize-unit.js';
import { GraphRuntime } from './runtime.js';
import { CheckpointError, readTensorBytesSync } from './safetensors-reader.js';
import { transposedSlice, slabRange, weightRange, type WeightSource } from './weight-source.js';

/** A unit to quantize, from weights read by the main thread (`raws`) or to read here (`reads`, one per module). */
export interface LoopTask {
  readonly id: number;
  readonly modules: readonly UnitModule[];
  readonly raws?: readonly Uint8Array[];
  readonly reads?: readonly WeightSource[];
}

/** Its tensors (and the main thread's buffers, back for reuse), or why there are none. */
export type LoopReply =
  | { readonly id: number; readonly out: { readonly name: string; readonly bytes: Uint8Array }[]; readonly bytesRead: number; readonly raws: Uint8Array[] }
  | { readonly id: number; readonly error: string; readonly kind: 'nonFinite' | 'checkpoint' | 'other'; readonly code?: string };

/** What a worker is started with. */
export interface LoopWorkerData {
  /** Bytes of read buffers it may keep for its next reads (the workers' share of the read-ahead budget). */
  readonly keptBytes: number;
}

/** Read buffers kept for the next reads of their sizes (the workers' share of the read-ahead budget). */
const kept = new BufferPool((workerData as LoopWorkerData | null)?.keptBytes ?? 2 ** 28);

/**
 * A unit's weights read here: each one file range into a kept buffer
 * (given back after quantizing), or its projection transposed out of its
 * expert's slab, read once for the unit (NVFP4's gate and up of one expert
 * share a unit and a slab).
 */
function readAll(sources: readonly WeightSource[]): Uint8Array[] {
  const slabs = new Map<string, Uint8Array>();
  const weights = sources.map((src) => {
    const range = weightRange(src);
    if (range) return readTensorBytesSync(range, kept.take(range.byteLength));
    const at = slabRange(src);
    const key = `${at.file}:${at.offset}`;
    let slab = slabs.get(key);
    if (!slab) slabs.set(key, (slab = readTensorBytesSync(at, kept.take(at.byteLength))));
    return transposedSlice(src, slab);
  });
  for (const slab of slabs.values()) kept.give(slab);
  return weights;
}

// Only loop kernels come here: the runtime never loads onnxruntime.
const rt = new GraphRuntime('cpu');
parentPort!.on('message', (task: LoopTask) => {
  const fail = (e: unknown): void => {
    const kind = e instanceof NonFiniteWeightError ? 'nonFinite' : e instanceof CheckpointError ? 'checkpoint' : 'other';
    const code = (e as NodeJS.ErrnoException).code;
    parentPort!.postMessage({ id: task.id, error: (e as Error).message, kind, ...(typeof code === 'string' ? { code } : {}) } satisfies LoopReply);
  };
  let raws: Uint8Array[];
  try {
    raws = task.reads ? readAll(task.reads) : [...(task.raws ?? [])];
  } catch (e) {
    fail(e);
    return;
  }
  quantizeUnit(rt, task.modules, raws).then(({ out, bytesRead }) => {
    // The main thread's weights go back too, for its next reads of their size; the worker's own stay here.
    const back = task.reads ? [] : raws;
    if (task.reads) task.reads.forEach((src, i) => weightRange(src) && kept.give(raws[i]!));
    const buffers = [...new Set([...out, ...back.map((bytes) => ({ bytes }))].map((t) => t.bytes.buffer as ArrayBuffer))];
    parentPort!.postMessage({ id: task.id, out, bytesRead, raws: back } satisfies LoopReply, buffers);
  }, fail);
});
