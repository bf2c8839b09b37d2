/**
 * Worker threads for the CPU loops: one unit at a time each, so that the
 * cores quantize different weights at once while the main thread reads
 * ahead and writes. Only built code runs them (the worker is a .js file
 * next to this module); elsewhere {@link startLoopWorkers} returns none and
 * units are quantized on the main thread, with the same results.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { builtScript, WorkerChannel, type Unsent } from './worker-channel.js';
import type { LoopReply, LoopTask, LoopWorkerData } from './loop-worker.js';
import { NonFiniteWeightError, type UnitModule, type UnitOutput } from './quantize-unit.js';
import { CheckpointError } from './safetensors-reader.js';
import { cudaTf32Allowed, DeviceMemoryError, prepareCudaEnvironment, RuntimeUnavailableError, type GraphRuntime } from './runtime.js';
import type { WeightSource } from './weight-source.js';

/** A worker thread that died (an error it did not catch, running out of memory, being stopped) before answering. */
export class LoopWorkerError extends Error {}

/** One worker thread. */
export class LoopWorker {
  private readonly channel: WorkerChannel<LoopTask, LoopReply>;

  constructor(worker: Worker) {
    this.channel = new WorkerChannel(worker, (how) => new LoopWorkerError(`a weight-pass worker thread ${how}`));
  }

  /** Quantizes a unit; `raws` are transferred there and back (returned with the tensors, for reuse). */
  quantize(modules: readonly UnitModule[], raws: readonly Uint8Array[]): Promise<{ out: UnitOutput; bytesRead: number; raws: Uint8Array[] }> {
    return this.post({ modules, raws }, [...new Set(raws.map((r) => r.buffer as ArrayBuffer))]);
  }

  /** Quantizes same-shaped single weights in one graph run (`modules[i]` from `raws[i]`; see `quantizeStack`); `raws` come back with them. */
  async quantizeStack(modules: readonly UnitModule[], raws: readonly Uint8Array[]): Promise<{ outs: { out: UnitOutput; bytesRead: number }[]; raws: Uint8Array[] }> {
    const reply = await this.post({ modules, raws, stack: true }, [...new Set(raws.map((r) => r.buffer as ArrayBuffer))]);
    return { outs: reply.outs!, raws: reply.raws };
  }

  /** Reads a unit's weights from their files in the worker, then quantizes them. */
  readAndQuantize(modules: readonly UnitModule[], reads: readonly WeightSource[]): Promise<{ out: UnitOutput; bytesRead: number }> {
    return this.post({ modules, reads }, []);
  }

  private async post(task: Unsent<LoopTask>, transfer: ArrayBuffer[]): Promise<{ out: UnitOutput; bytesRead: number; raws: Uint8Array[]; outs?: { out: UnitOutput; bytesRead: number }[] }> {
    const reply = await this.channel.post(task, transfer);
    if ('error' in reply) throw replyError(reply);
    return { out: reply.out, bytesRead: reply.bytesRead, raws: reply.raws, ...(reply.outs ? { outs: reply.outs } : {}) };
  }

  async terminate(): Promise<void> {
    await this.channel.terminate();
  }
}

/** The error a worker reported, as the main thread would have thrown it. */
function replyError(reply: Extract<LoopReply, { error: string }>): Error {
  if (reply.kind === 'nonFinite') return new NonFiniteWeightError(reply.error);
  if (reply.kind === 'checkpoint') return new CheckpointError(reply.error);
  if (reply.kind === 'deviceMemory') return new DeviceMemoryError(reply.error);
  if (reply.kind === 'unavailable') return new RuntimeUnavailableError(reply.error);
  return Object.assign(new Error(reply.error), reply.code === undefined ? {} : { code: reply.code });
}

/** The built worker script, when this module runs from built code. */
function workerScript(): URL | null {
  return builtScript(new URL('./loop-worker.js', import.meta.url));
}

/**
 * How many workers a CPU weight pass uses by default: one per core from two
 * cores up (at most 16). Measured on an idle 2-core VM, two workers beat
 * the main thread alone (FP8 0.43 against 0.36 GB/s) and one worker; on the
 * same VM under heavy load from other processes the main thread alone was
 * faster (each worker compiles the kernels anew and competes with the
 * reads and writes): `ApplyJob.cpuWorkers` = 0 there.
 */
export function defaultLoopWorkers(): number {
  const cores = availableParallelism();
  return cores >= 2 ? Math.min(cores, 16) : 0;
}

/**
 * One worker per runtime of several devices (`--device cuda:0,1,…`), each
 * quantizing with a runtime like it, or none where the worker script is not
 * built or `QUANTC_DEVICE_WORKERS=0`: onnxruntime-node runs a session
 * synchronously on the thread that calls it, so units issued from one
 * thread to several GPUs would take turns. Each keeps at most
 * `keptBytes / runtimes` of read buffers.
 */
export function startDeviceLoopWorkers(runtimes: readonly GraphRuntime[], keptBytes: number): LoopWorker[] {
  const script = workerScript();
  if (!script || runtimes.length < 2 || process.env.QUANTC_DEVICE_WORKERS === '0') return [];
  // A worker's environment is a copy taken when it starts; cuBLAS reads the process's, set here first.
  if (runtimes.some((rt) => rt.device === 'cuda')) prepareCudaEnvironment();
  return runtimes.map((rt) => {
    const runtime = { device: rt.device, deviceId: rt.deviceId, chunkElements: rt.chunkElements, decodeBf16InGraph: rt.decodeBf16InGraph, encodeFp8InGraph: rt.encodeFp8InGraph, cpuLoops: rt.cpuLoops, tf32: cudaTf32Allowed() };
    return new LoopWorker(new Worker(script, { workerData: { keptBytes: Math.floor(keptBytes / runtimes.length), runtime } satisfies LoopWorkerData }));
  });
}

/**
 * Starts `count` workers, or none where the worker script is not built.
 * Together they keep at most `keptBytes` of read buffers between units (a
 * weight larger than a worker's share is read into a new buffer each time).
 */
export function startLoopWorkers(count: number, keptBytes: number): LoopWorker[] {
  const script = workerScript();
  if (!script || count < 1) return [];
  const workerData: LoopWorkerData = { keptBytes: Math.floor(keptBytes / count) };
  return Array.from({ length: count }, () => new LoopWorker(new Worker(script, { workerData })));
}
