/**
 * Graph runs on several devices at once: one worker thread per device
 * (device-worker.ts), because onnxruntime-node runs a session synchronously
 * on the calling thread, and runs issued from one thread for several GPUs
 * would take turns. Only built code starts them (the worker is a .js file
 * next to this module); elsewhere {@link startDeviceWorker} returns null and
 * the caller runs in its own thread, with the same results.
 *
 * Feeds are copied into buffers of their own and transferred (the caller's
 * stays its own: a stack is read again by later passes); outputs come back
 * transferred, and an output the caller gave memory for is copied into it.
 */
import { Worker } from 'node:worker_threads';
import { builtScript, WorkerChannel, type Unsent } from './worker-channel.js';
import type { DeviceReply, DeviceTask, DeviceWorkerData } from './device-worker.js';
import { cudaTf32Allowed, DeviceMemoryError, prepareCudaEnvironment, RuntimeUnavailableError, type Device, type Feed, type ModelBytes, type RawTensor, type RuntimeTimings } from './runtime.js';

/** A device worker thread that died before answering: its device's runtime is gone, as `apply` reports it (apply-failed). */
export class DeviceWorkerError extends RuntimeUnavailableError {}

/** What a layer pass needs of a runtime: {@link GraphRuntime} in this thread, or a device worker's. */
export interface GraphRunner {
  run(key: string, build: () => ModelBytes, feeds: Readonly<Record<string, Feed>>, outputs?: (name: string) => boolean, into?: Readonly<Record<string, RawTensor>>): Promise<Record<string, RawTensor>>;
  dispose(): Promise<void>;
}

/** Runs graphs on one device from a worker thread of its own. */
export class DeviceWorkerRuntime implements GraphRunner {
  private readonly channel: WorkerChannel<DeviceTask, DeviceReply>;
  /** Session keys whose graph the worker holds. */
  private readonly sent = new Set<string>();
  /** Where the worker's session creation and run times are added up, when set. */
  timings?: RuntimeTimings;
  /** Runs sent to the worker (for tests and reports). */
  runs = 0;

  constructor(worker: Worker) {
    this.channel = new WorkerChannel(worker, (how) => new DeviceWorkerError(`a device worker thread ${how}`));
  }

  async run(key: string, build: () => ModelBytes, feeds: Readonly<Record<string, Feed>>, outputs?: (name: string) => boolean, into?: Readonly<Record<string, RawTensor>>): Promise<Record<string, RawTensor>> {
    const own: Record<string, RawTensor> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [name, f] of Object.entries(feeds)) {
      const t = typeof f === 'function' ? f() : f;
      // A copy of just the view (cloning a view would copy its whole buffer), moved rather than cloned again.
      const data = t.data.slice();
      transfer.push(data.buffer as ArrayBuffer);
      own[name] = { type: t.type, data, dims: t.dims };
    }
    const bytes = this.sent.has(key) ? undefined : build();
    // A predicate cannot cross to the worker: every output is computed there, and those not asked for are dropped here.
    const reply = await this.post({ kind: 'run', key, feeds: own, ...(bytes === undefined ? {} : { bytes }) }, transfer);
    if (bytes !== undefined) this.sent.add(key);
    this.runs++;
    if ('error' in reply) throw replyError(reply);
    const out: Record<string, RawTensor> = {};
    for (const [name, t] of Object.entries(reply.out)) {
      if (outputs && !outputs(name)) continue;
      const target = into?.[name];
      if (target) {
        if (target.data.length !== t.data.length || target.data.constructor !== t.data.constructor) throw new RangeError(`output ${name}: the memory given for it does not hold it`);
        (target.data as Uint16Array).set(t.data as Uint16Array);
      }
      out[name] = target ?? t;
    }
    return out;
  }

  /** Releases the worker's sessions (it stays up for later runs). */
  async dispose(): Promise<void> {
    this.sent.clear();
    if (this.channel.dead) return;
    const reply = await this.post({ kind: 'dispose' }, []);
    if ('error' in reply) throw replyError(reply);
  }

  /** Stops the thread. */
  async terminate(): Promise<void> {
    await this.channel.terminate();
  }

  private async post(task: Unsent<DeviceTask>, transfer: ArrayBuffer[]): Promise<DeviceReply> {
    const reply = await this.channel.post(task, transfer);
    if (this.timings) addTimings(this.timings, reply.timings);
    return reply;
  }
}

/** Adds `more` into `into`. */
function addTimings(into: RuntimeTimings, more: RuntimeTimings): void {
  for (const k of Object.keys(more) as (keyof RuntimeTimings)[]) into[k] += more[k];
}

/** The error the worker reported, as this thread's runtime would have thrown it. */
function replyError(reply: Extract<DeviceReply, { error: string }>): Error {
  if (reply.name === 'DeviceMemoryError') return new DeviceMemoryError(reply.error);
  if (reply.name === 'RuntimeUnavailableError') return new RuntimeUnavailableError(reply.error);
  return new Error(reply.error);
}

/** The built worker script, when this module runs from built code. */
function workerScript(): URL | null {
  return builtScript(new URL('./device-worker.js', import.meta.url));
}

/** A worker thread running graphs on `device` (`deviceId` on CUDA), or null where the worker script is not built. */
export function startDeviceWorker(device: Device, deviceId: number | undefined, settings: { foldConstants: boolean; maxSessions?: number }): DeviceWorkerRuntime | null {
  const script = workerScript();
  if (!script) return null;
  // The worker's environment is a copy taken now; cuBLAS reads the process's, set here first.
  if (device === 'cuda') prepareCudaEnvironment();
  const workerData: DeviceWorkerData = { device, deviceId, foldConstants: settings.foldConstants, maxSessions: settings.maxSessions, tf32: cudaTf32Allowed() };
  return new DeviceWorkerRuntime(new Worker(script, { workerData }));
}
