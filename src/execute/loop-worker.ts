/**
 * A worker thread of the weight pass: quantizes units in the CPU loops
 * (`rtn/cpu-kernel.ts`), or on one GPU of several with that device's
 * runtime, while the main thread writes. Raw weights arrive
 * as transferred buffers, or as weight sources the worker reads itself into
 * buffers it keeps (so the cores read beside each other and the main thread
 * only writes); tensors leave as transferred buffers (no copies).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { BufferPool } from './buffer-pool.js';
import { NonFiniteWeightError, quantizeStack, quantizeUnit, type UnitModule, type UnitOutput } from './quantize-unit.js';
import { allowCudaTf32, DeviceMemoryError, GraphRuntime, RuntimeUnavailableError, type Device } from './runtime.js';
import { CheckpointError, readTensorBytesSync } from './safetensors-reader.js';
import { transposedSlice, slabRange, weightRange, type WeightSource } from './weight-source.js';

/**
 * A unit to quantize, from weights read by the main thread (`raws`) or to
 * read here (`reads`, one per module); with `stack`, same-shaped single
 * weights quantized in one graph run (`modules[i]` from `raws[i]`), each
 * one's tensors in `outs`.
 */
export interface LoopTask {
  readonly id: number;
  readonly modules: readonly UnitModule[];
  readonly raws?: readonly Uint8Array[];
  readonly reads?: readonly WeightSource[];
  readonly stack?: boolean;
}

/** Its tensors (and the main thread's buffers, back for reuse), or why there are none. */
export type LoopReply =
  | { readonly id: number; readonly out: { readonly name: string; readonly bytes: Uint8Array }[]; readonly bytesRead: number; readonly raws: Uint8Array[]; readonly outs?: { out: UnitOutput; bytesRead: number }[] }
  | { readonly id: number; readonly error: string; readonly kind: 'nonFinite' | 'checkpoint' | 'deviceMemory' | 'unavailable' | 'other'; readonly code?: string };

/** What a worker is started with. */
export interface LoopWorkerData {
  /** Bytes of read buffers it may keep for its next reads (the workers' share of the read-ahead budget). */
  readonly keptBytes: number;
  /**
   * The runtime it quantizes with: absent, the CPU loops (onnxruntime never
   * loaded); given, a device's (a GPU of `--device cuda:0,1,…`), whose graph
   * runs then overlap with the other devices' (see startDeviceLoopWorkers).
   */
  readonly runtime?: {
    readonly device: Device;
    readonly deviceId?: number;
    readonly chunkElements: number | null;
    readonly decodeBf16InGraph: boolean;
    readonly encodeFp8InGraph: boolean;
    readonly cpuLoops: boolean;
    readonly tf32: boolean;
  };
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

// The CPU loops' workers get only loop kernels (the runtime never loads onnxruntime); a device's, its runtime's.
const spec = (workerData as LoopWorkerData | null)?.runtime;
if (spec) allowCudaTf32(spec.tf32);
const rt = spec ? new GraphRuntime(spec.device, spec.chunkElements, spec.decodeBf16InGraph, spec.encodeFp8InGraph, spec.cpuLoops) : new GraphRuntime('cpu');
if (spec) rt.deviceId = spec.deviceId;
parentPort!.on('message', (task: LoopTask) => {
  const fail = (e: unknown): void => {
    const kind = e instanceof NonFiniteWeightError ? 'nonFinite' : e instanceof CheckpointError ? 'checkpoint' : e instanceof DeviceMemoryError ? 'deviceMemory' : e instanceof RuntimeUnavailableError ? 'unavailable' : 'other';
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
  if (task.stack) {
    quantizeStack(rt, task.modules, raws).then((outs) => {
      const buffers = [...new Set([...outs.flatMap((o) => o.out), ...raws.map((bytes) => ({ bytes }))].map((t) => t.bytes.buffer as ArrayBuffer))];
      parentPort!.postMessage({ id: task.id, out: [], bytesRead: 0, raws, outs } satisfies LoopReply, buffers);
    }, fail);
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
