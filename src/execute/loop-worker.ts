/**
 * A worker thread of the CPU weight pass: quantizes units in the CPU loops
 * (`rtn/cpu-kernel.ts`) while the main thread writes. Raw weights arrive
 * as transferred buffers, or as file ranges the worker reads itself into
 * buffers it keeps (so the cores read beside each other and the main thread
 * only writes); tensors leave as transferred buffers (no copies).
 */
import { parentPort } from 'node:worker_threads';
import { NonFiniteWeightError, quantizeUnit, type UnitModule } from './quantize-unit.js';
import { GraphRuntime } from './runtime.js';
import { CheckpointError, readTensorBytesSync } from './safetensors-reader.js';

/** A byte range of a checkpoint file: one module's raw weight. */
export interface LoopRead {
  readonly file: string;
  readonly offset: number;
  readonly byteLength: number;
  readonly name: string;
}

/** A unit to quantize, from weights read by the main thread (`raws`) or to read here (`reads`). */
export interface LoopTask {
  readonly id: number;
  readonly modules: readonly UnitModule[];
  readonly raws?: readonly Uint8Array[];
  readonly reads?: readonly LoopRead[];
}

/** Its tensors (and the main thread's buffers, back for reuse), or why there are none. */
export type LoopReply =
  | { readonly id: number; readonly out: { readonly name: string; readonly bytes: Uint8Array }[]; readonly bytesRead: number; readonly raws: Uint8Array[] }
  | { readonly id: number; readonly error: string; readonly kind: 'nonFinite' | 'checkpoint' | 'other'; readonly code?: string };

/** Bytes of read buffers a worker keeps for its next reads, at most (beyond the one weight it holds). */
const KEPT_BYTES = 2 ** 28;

/** Buffers of earlier reads, by size, least recently used first. */
const kept = new Map<number, Uint8Array>();

function buffersFor(reads: readonly LoopRead[]): Uint8Array[] {
  return reads.map((r) => {
    const b = kept.get(r.byteLength);
    kept.delete(r.byteLength);
    return readTensorBytesSync(r, b);
  });
}

function keep(buffers: readonly Uint8Array[]): void {
  for (const b of buffers) {
    kept.delete(b.byteLength);
    kept.set(b.byteLength, b);
  }
  let total = [...kept.values()].reduce((a, b) => a + b.byteLength, 0);
  for (const [size, b] of kept) {
    if (total <= KEPT_BYTES || kept.size === 1) break;
    kept.delete(size);
    total -= b.byteLength;
  }
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
    raws = task.reads ? buffersFor(task.reads) : [...(task.raws ?? [])];
  } catch (e) {
    fail(e);
    return;
  }
  quantizeUnit(rt, task.modules, raws).then(({ out, bytesRead }) => {
    // The main thread's weights go back too, for its next reads of their size; the worker's own stay here.
    const back = task.reads ? [] : raws;
    if (task.reads) keep(raws);
    const buffers = [...new Set([...out, ...back.map((bytes) => ({ bytes }))].map((t) => t.bytes.buffer as ArrayBuffer))];
    parentPort!.postMessage({ id: task.id, out, bytesRead, raws: back } satisfies LoopReply, buffers);
  }, fail);
});
