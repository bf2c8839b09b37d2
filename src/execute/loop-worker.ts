/**
 * A worker thread of the CPU weight pass: quantizes units in the CPU loops
 * (`rtn/cpu-kernel.ts`) while the main thread reads and writes. Raw
 * weights arrive and tensors leave as transferred buffers (no copies).
 */
import { parentPort } from 'node:worker_threads';
import { NonFiniteWeightError, quantizeUnit, type UnitModule } from './quantize-unit.js';
import { GraphRuntime } from './runtime.js';

/** A unit to quantize. */
export interface LoopTask {
  readonly id: number;
  readonly modules: readonly UnitModule[];
  readonly raws: readonly Uint8Array[];
}

/** Its tensors, or why there are none. */
export type LoopReply =
  | { readonly id: number; readonly out: { readonly name: string; readonly bytes: Uint8Array }[]; readonly bytesRead: number; readonly raws: Uint8Array[] }
  | { readonly id: number; readonly error: string; readonly nonFinite: boolean };

// Only loop kernels come here: the runtime never loads onnxruntime.
const rt = new GraphRuntime('cpu');
parentPort!.on('message', (task: LoopTask) => {
  quantizeUnit(rt, task.modules, task.raws).then(
    ({ out, bytesRead }) => {
      // The weights go back too, for the next reads of their size.
      const buffers = [...new Set([...out, ...task.raws.map((bytes) => ({ bytes }))].map((t) => t.bytes.buffer as ArrayBuffer))];
      parentPort!.postMessage({ id: task.id, out, bytesRead, raws: [...task.raws] } satisfies LoopReply, buffers);
    },
    (e: unknown) => parentPort!.postMessage({ id: task.id, error: (e as Error).message, nonFinite: e instanceof NonFiniteWeightError } satisfies LoopReply),
  );
});
