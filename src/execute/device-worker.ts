/**
 * A worker thread that runs graphs on one device for the main thread
 * (device-workers.ts). onnxruntime-node runs a session synchronously on the
 * thread that calls it, so runs meant for several GPUs at once only overlap
 * from threads of their own. Graph bytes arrive once per session key;
 * feeds arrive and outputs leave as transferred buffers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { allowCudaTf32, emptyRuntimeTimings, GraphRuntime, type Device, type ModelBytes, type RawTensor, type RuntimeTimings } from './runtime.js';

/** What a device worker is started with. */
export interface DeviceWorkerData {
  readonly device: Device;
  readonly deviceId?: number;
  readonly foldConstants: boolean;
  readonly maxSessions?: number;
  readonly tf32: boolean;
}

/** A run (graph `bytes` with the first run of `key`), or releasing every session. */
export type DeviceTask =
  | { readonly id: number; readonly kind: 'run'; readonly key: string; readonly bytes?: ModelBytes; readonly feeds: Readonly<Record<string, RawTensor>> }
  | { readonly id: number; readonly kind: 'dispose' };

/** The outputs and the runtime's timings of the task, or why there are none (`name`: the error's class). */
export type DeviceReply =
  | { readonly id: number; readonly out: Record<string, RawTensor>; readonly timings: RuntimeTimings }
  | { readonly id: number; readonly error: string; readonly name: string; readonly timings: RuntimeTimings };

const data = workerData as DeviceWorkerData;
allowCudaTf32(data.tf32);
const rt = new GraphRuntime(data.device);
rt.deviceId = data.deviceId;
rt.foldConstants = data.foldConstants;
rt.maxSessions = data.maxSessions;
rt.timings = emptyRuntimeTimings();
const graphs = new Map<string, ModelBytes>();

/** The timings since the last reply (the main thread adds them to its own). */
function drain(): RuntimeTimings {
  const t = rt.timings!;
  rt.timings = emptyRuntimeTimings();
  return t;
}

// One task at a time, in the order sent: a bounded runtime's runs must not overlap.
let queue: Promise<void> = Promise.resolve();
parentPort!.on('message', (task: DeviceTask) => {
  queue = queue.then(() => handle(task));
});

async function handle(task: DeviceTask): Promise<void> {
  try {
    if (task.kind === 'dispose') {
      await rt.dispose();
      graphs.clear();
      parentPort!.postMessage({ id: task.id, out: {}, timings: drain() } satisfies DeviceReply);
      return;
    }
    if (task.bytes !== undefined) graphs.set(task.key, task.bytes);
    const bytes = graphs.get(task.key);
    if (bytes === undefined) throw new Error(`device worker: no graph for session ${task.key}`);
    const out = await rt.run(task.key, () => bytes, task.feeds);
    const transfer = [...new Set(Object.values(out).map((t) => t.data.buffer as ArrayBuffer))];
    parentPort!.postMessage({ id: task.id, out, timings: drain() } satisfies DeviceReply, transfer);
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    parentPort!.postMessage({ id: task.id, error: error.message, name: error.constructor.name, timings: drain() } satisfies DeviceReply);
  }
}
