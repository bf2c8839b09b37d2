/**
 * The onnxruntime-node session cache. This is the only module that loads
 * onnxruntime-node, and it does so lazily, so commands that never execute a
 * graph never pay for the native library.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import type { ModelBytes } from './onnx/graph-builder.js';

/** Where graphs run. */
export type Device = 'cpu' | 'cuda';

/** A raw tensor handed to or returned from a graph. */
export interface RawTensor {
  readonly type: 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'uint16';
  readonly data: Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array | Uint16Array;
  readonly dims: readonly number[];
}

/** A graph input as a run feeds it: a tensor, or a function that makes it when the graph reads that input (a large table a fused graph does not need). */
export type Feed = RawTensor | (() => RawTensor);

export type { ModelBytes };

/**
 * Wall-clock milliseconds spent in onnxruntime (profiling): runtimes given
 * the same object add to it.
 */
export interface RuntimeTimings {
  /** Session creation: parsing the graph, optimising it, placing its weights on the device. */
  create: number;
  /** `run` calls: feeds copied in, the graph, outputs copied back. */
  run: number;
  /** Releasing sessions (freeing their device memory). */
  release: number;
  sessions: number;
  runs: number;
  /**
   * Of {@link run}, the runs that were the first of their session with
   * their input shapes (where a provider plans its kernels and grows its
   * memory), and how many: the rest is the steady runs' share.
   */
  firstRuns: number;
  firstRunCount: number;
}

/** Zeroed {@link RuntimeTimings}. */
export function emptyRuntimeTimings(): RuntimeTimings {
  return { create: 0, run: 0, release: 0, sessions: 0, runs: 0, firstRuns: 0, firstRunCount: 0 };
}

/** onnxruntime could not be loaded or the provider is missing; the message says what to do. */
export class RuntimeUnavailableError extends Error {}

/** Default of `QUANTC_GRAPH_WEIGHT_MB`: 16 GiB of float32-equivalent weights (8 GiB of bf16 on the card). */
export const DEFAULT_GRAPH_WEIGHT_MB = 2 ** 14;

/**
 * Float32 megabytes of the checkpoint's own weights one graph may hold on
 * CUDA (`ForwardModel.referencedGraphWeightBytes`): `QUANTC_GRAPH_WEIGHT_MB`
 * (lower it on a card with little memory; 0 for the protobuf-bound defaults),
 * else {@link DEFAULT_GRAPH_WEIGHT_MB}.
 */
export function graphWeightMegabytes(): number {
  const text = process.env.QUANTC_GRAPH_WEIGHT_MB;
  const mb = Number(text);
  return text !== undefined && text.trim() !== '' && Number.isFinite(mb) && mb >= 0 ? mb : DEFAULT_GRAPH_WEIGHT_MB;
}

/** The card ran out of memory creating or running a graph; the message says what to lower. */
export class DeviceMemoryError extends Error {}

/** onnxruntime's and CUDA's words for an allocation that failed on the device. */
const DEVICE_MEMORY = /Failed to allocate memory|out of memory|CUDNN_STATUS_ALLOC_FAILED|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation/i;

/**
 * `e` as a {@link DeviceMemoryError} when it is a CUDA allocation failure
 * while `doing` (graph `key`), else `e` itself.
 */
export function deviceMemoryError(e: unknown, device: Device, doing: string): unknown {
  if (device !== 'cuda' || !(e instanceof Error) || !DEVICE_MEMORY.test(e.message)) return e;
  return new DeviceMemoryError(
    `the GPU ran out of memory ${doing} (${e.message.split('\n')[0]!.trim()}); lower QUANTC_GRAPH_WEIGHT_MB (the float32 megabytes of weights one graph may hold, now ${graphWeightMegabytes()}) or the batch size, or run on a card with more memory`,
  );
}

/**
 * Checks that `device` can run graphs at all (onnxruntime loads, the CUDA
 * provider and a GPU are there) with a one-node graph, so that a missing
 * provider is reported before any work; throws {@link RuntimeUnavailableError}.
 */
export async function probeDevice(device: Device, deviceId?: number): Promise<void> {
  const { GraphBuilder, OnnxType } = await import('./onnx/graph-builder.js');
  const g = new GraphBuilder();
  g.output(g.op('Identity', [g.input('x', OnnxType.float, [1])]), 'y', OnnxType.float, [1]);
  const rt = new GraphRuntime(device);
  rt.deviceId = deviceId;
  try {
    await rt.run('probe', () => g.build('probe'), { x: { type: 'float32', data: Float32Array.of(1), dims: [1] } });
  } finally {
    await rt.dispose().catch(() => undefined);
  }
}

/** Whether CUDA float32 MatMuls may round their inputs to TF32 (see {@link allowCudaTf32}). */
let cudaTf32 = false;

/** The CUDA devices a session was created on in this process: a later failure there is the graph's, not a missing provider. */
const cudaLoaded = new Set<number>();

/**
 * Lets cuBLAS multiply float32 matrices in TF32 (10-bit mantissas, float32
 * accumulation) on CUDA, or not (the default: float32 arithmetic as on the
 * CPU). Decided once per process, before the first CUDA session: cuBLAS
 * reads `NVIDIA_TF32_OVERRIDE` when it starts.
 */
export function allowCudaTf32(allowed: boolean): void {
  cudaTf32 = allowed;
}

/** Whether {@link allowCudaTf32} allowed TF32 (device worker threads are told). */
export function cudaTf32Allowed(): boolean {
  return cudaTf32;
}

/**
 * Sets what cuBLAS reads when it starts (see {@link allowCudaTf32}). Called
 * on the main thread before CUDA starts there or in a worker thread: a
 * worker's `process.env` is its own copy, which the library never reads.
 */
export function prepareCudaEnvironment(): void {
  if (!cudaTf32) process.env.NVIDIA_TF32_OVERRIDE ??= '0';
}

/** Runs graphs by key, building and caching each session once. */
export class GraphRuntime {
  private sessions = new Map<string, Promise<Ort.InferenceSession>>();
  /** Session keys with the input shapes they have run with (for {@link RuntimeTimings.firstRuns}). */
  private readonly shapesRun = new Set<string>();
  private ort: typeof Ort | null = null;
  /** Where session creation and run times are added up, when set. */
  timings?: RuntimeTimings;
  /**
   * Whether onnxruntime folds constant subgraphs when a session is created
   * (default). Off, constant work (widening and transposing stored weights)
   * runs inside every `run` instead: on CUDA that is a fraction of a
   * millisecond on the device, while folding copies every weight several
   * times on the host before it is uploaded. Off, constant MatMul weights
   * are not prepacked either (the CPU's packed products sum in another order
   * than those of fed weights; CUDA's kernels do not prepack).
   */
  foldConstants = true;
  /** The CUDA device ordinal sessions are placed on (absent: the provider's default, 0). */
  deviceId?: number;
  /**
   * Sessions kept at most: creating one more releases the one used least
   * recently (its device memory with it). Unbounded when unset. Runs on
   * one runtime must not overlap when bounded.
   */
  maxSessions?: number;

  /**
   * `chunkElements`: largest weight slice per graph run for row-independent
   * strategies (null: whole weights); defaults to 2^20 on the CPU, where
   * cache-sized slices are faster, and whole weights on CUDA.
   * `decodeBf16InGraph`: feed bf16 weights as raw bits and widen them inside
   * the graph (default on CUDA, where it halves the upload and saves a pass in
   * JavaScript; on the CPU widening in JavaScript is faster).
   * `encodeFp8InGraph`: FP8 graphs return E4M3 byte codes rather than float32
   * values (default on CUDA: a quarter of the download, no pass in JavaScript).
   * `cpuLoops`: round-to-nearest in plain loops (`rtn/cpu-kernel.ts`)
   * instead of graphs (default on the CPU, where one fused pass beats a
   * sweep per graph operator; same results).
   */
  constructor(
    readonly device: Device,
    readonly chunkElements: number | null = device === 'cpu' ? 1 << 20 : null,
    readonly decodeBf16InGraph: boolean = device === 'cuda',
    readonly encodeFp8InGraph: boolean = device === 'cuda',
    readonly cpuLoops: boolean = device === 'cpu',
  ) {}

  private async load(): Promise<typeof Ort> {
    if (this.ort) return this.ort;
    // onnxruntime-node passes no CUDA provider options (use_tf32 included), and
    // the provider lets cuBLAS round float32 MatMul inputs to TF32 by default;
    // NVIDIA's override keeps float32 math float32, as the CPU computes it.
    if (this.device === 'cuda') prepareCudaEnvironment();
    try {
      this.ort = (await import('onnxruntime-node')) as typeof Ort;
    } catch (e) {
      throw new RuntimeUnavailableError(`cannot load onnxruntime-node: ${(e as Error).message}`);
    }
    // onnxruntime's own log lines (a missing provider library, …) would repeat what the diagnostic says.
    this.ort.env.logLevel = 'fatal';
    return this.ort;
  }

  /** Releases the least recently used sessions until one more fits {@link maxSessions} (chosen now, released in the promise). */
  private evict(): Promise<void> {
    const victims: [string, Promise<Ort.InferenceSession>][] = [];
    while (this.maxSessions !== undefined && this.sessions.size >= Math.max(1, this.maxSessions)) {
      const victim = this.sessions.entries().next().value!;
      this.sessions.delete(victim[0]);
      victims.push(victim);
    }
    return (async () => {
      for (const [key, s] of victims) {
        const session = await s.catch(() => undefined);
        if (session) await close(key, session);
      }
    })();
  }

  private session(key: string, build: () => ModelBytes): Promise<Ort.InferenceSession> {
    let s = this.sessions.get(key);
    if (s) {
      // Most recently used last.
      this.sessions.delete(key);
      this.sessions.set(key, s);
    } else {
      const evicted = this.evict();
      s = evicted.then(() => this.load()).then(async (ort) => {
        const providers = this.device === 'cuda' ? [this.deviceId === undefined ? 'cuda' : { name: 'cuda' as const, deviceId: this.deviceId }] : ['cpu'];
        // The diagnostic variables are read before onnxruntime is asked for anything: a wrong one is said as itself.
        // QUANTC_ORT_SAVE=PREFIX: the graph as onnxruntime runs it (after its optimizers and placement, with the
        // Memcpy nodes it inserted between devices) saved as PREFIX-<graph>.onnx, initializers of 1 KiB and more in
        // PREFIX-<graph>.data beside it; also limited by QUANTC_ORT_PROFILE_MATCH.
        const saved = perGraphPath('QUANTC_ORT_SAVE', key);
        // QUANTC_ORT_PROFILE=PREFIX: onnxruntime's own per-node trace of every session (JSON files PREFIX-<graph>_<date>.json;
        // profiling), or of those whose graph key matches QUANTC_ORT_PROFILE_MATCH (a regular expression).
        const trace = perGraphPath('QUANTC_ORT_PROFILE', key);
        // onnxruntime writes there without making the folder; a missing one would fail the session.
        if (saved) {
          try {
            mkdirSync(dirname(saved), { recursive: true });
          } catch (e) {
            throw new RuntimeUnavailableError(`QUANTC_ORT_SAVE: cannot make the folder of ${saved} (${(e as Error).message})`);
          }
        }
        const built = build();
        const bytes = built instanceof Uint8Array ? built : built.bytes;
        const extra = {
          ...(saved ? { optimizedModelFilePath: `${saved}.onnx` } : {}),
          extra: {
            ...(this.foldConstants ? {} : { optimization: { disable_specified_optimizers: 'ConstantFolding' } }),
            session: {
              ...(this.foldConstants ? {} : { disable_prepacking: '1' }),
              ...sessionConfigFromEnv(),
              ...(built instanceof Uint8Array ? {} : { model_external_initializers_file_folder_path: built.externalData }),
              ...(saved ? { optimized_model_external_initializers_file_name: `${saved.slice(saved.lastIndexOf('/') + 1)}.data`, optimized_model_external_initializers_min_size_in_bytes: '1024' } : {}),
            },
          },
        };
        const profiling = trace ? { enableProfiling: true, profileFilePrefix: trace } : {};
        // QUANTC_ORT_LOG=0…3: onnxruntime's own log from that severity on (0: verbose, with each stage of session creation timed).
        const log = Number(process.env.QUANTC_ORT_LOG ?? 4);
        const logSeverityLevel = ([0, 1, 2, 3, 4] as const).find((l) => l === log) ?? 4;
        // QUANTC_ORT_OPT=disabled|basic|extended: a lower graph optimization level than 'all', for timing session creation.
        const level = (['disabled', 'basic', 'extended'] as const).find((l) => l === process.env.QUANTC_ORT_OPT) ?? 'all';
        // QUANTC_ORT_MEM_PATTERN=0: no memory pattern (onnxruntime plans one block per input shape from a session's first run), for timing the runs after the first.
        const memPattern = process.env.QUANTC_ORT_MEM_PATTERN === '0' ? { enableMemPattern: false } : {};
        const t0 = performance.now();
        try {
          const session = await ort.InferenceSession.create(bytes, { executionProviders: providers, graphOptimizationLevel: level, logSeverityLevel, ...memPattern, ...profiling, ...extra });
          if (this.device === 'cuda') cudaLoaded.add(this.deviceId ?? 0);
          if (this.timings) {
            this.timings.create += performance.now() - t0;
            this.timings.sessions++;
          }
          return session;
        } catch (e) {
          const memory = deviceMemoryError(e, this.device, `loading graph ${key}`);
          if (memory !== e) throw memory;
          if (this.device === 'cuda') throw new RuntimeUnavailableError(cudaSessionError((e as Error).message, key, this.deviceId, cudaLoaded.has(this.deviceId ?? 0)));
          throw e;
        }
      });
      this.sessions.set(key, s);
    }
    return s;
  }

  /**
   * Runs graph `key` (built by `build` on first use) and returns its outputs,
   * or only those `outputs` names (the others are neither computed for
   * nothing nor copied back). An output named in `into` is written into that
   * tensor's memory, which must have the output's type and exact shape:
   * onnxruntime then copies it there from the device instead of into memory
   * it allocates for the run, whose pages the copy would fault in first (a
   * reused buffer's are resident).
   */
  async run(
    key: string,
    build: () => ModelBytes,
    feeds: Readonly<Record<string, Feed>>,
    outputs?: (name: string) => boolean,
    into?: Readonly<Record<string, RawTensor>>,
  ): Promise<Record<string, RawTensor>> {
    const session = await this.session(key, build);
    const ort = this.ort!;
    const inputs: Record<string, Ort.Tensor> = {};
    // Only the graph's inputs are fed (its builder declares only those it reads); a lazy feed is made only then.
    for (const name of session.inputNames) {
      const f = feeds[name];
      if (f === undefined) continue;
      const t = typeof f === 'function' ? f() : f;
      inputs[name] = new ort.Tensor(t.type, t.data as never, t.dims as number[]);
    }
    const t0 = performance.now();
    let result: Ort.InferenceSession.ReturnType;
    try {
      const names = outputs ? session.outputNames.filter(outputs) : session.outputNames;
      if (into && names.some((n) => into[n] !== undefined)) {
        const fetches: Record<string, Ort.Tensor | null> = {};
        for (const n of names) {
          const t = into[n];
          fetches[n] = t ? new ort.Tensor(t.type, t.data as never, t.dims as number[]) : null;
        }
        result = await session.run(inputs, fetches);
      } else result = await (outputs ? session.run(inputs, names) : session.run(inputs));
    } catch (e) {
      throw deviceMemoryError(e, this.device, `running graph ${key}`);
    }
    if (this.timings) {
      const ms = performance.now() - t0;
      this.timings.run += ms;
      this.timings.runs++;
      const shape = `${key}\0${Object.values(inputs).map((t) => t.dims.join('x')).join(',')}`;
      if (!this.shapesRun.has(shape)) {
        this.shapesRun.add(shape);
        this.timings.firstRuns += ms;
        this.timings.firstRunCount++;
      }
    }
    const out: Record<string, RawTensor> = {};
    for (const [name, t] of Object.entries(result)) out[name] = into?.[name] ?? { type: t.type as RawTensor['type'], data: t.data as RawTensor['data'], dims: t.dims };
    return out;
  }

  /** Releases every session. */
  async dispose(): Promise<void> {
    const t0 = performance.now();
    for (const [key, s] of this.sessions) await close(key, await s);
    this.sessions.clear();
    // A session made again later plans its first runs again.
    this.shapesRun.clear();
    if (this.timings) this.timings.release += performance.now() - t0;
  }
}

/**
 * `QUANTC_ORT_SESSION_CONFIG=key=value,…`: more of onnxruntime's `session.*`
 * configuration entries (keys without the `session.` prefix), for timing
 * session creation under other settings.
 */
function sessionConfigFromEnv(): Record<string, string> {
  const raw = process.env.QUANTC_ORT_SESSION_CONFIG;
  if (!raw) return {};
  const entries = raw.split(',').filter(Boolean).map((e) => e.split('='));
  const bad = entries.find((e) => e.length !== 2 || !e[0]);
  if (bad) throw new RuntimeUnavailableError(`QUANTC_ORT_SESSION_CONFIG: "${bad.join('=')}" is not key=value`);
  return Object.fromEntries(entries.map(([k, v]) => [k!.replace(/^session\./, ''), v!]));
}

/** Releases session `key` (its device memory), writing its trace first where it was profiled. */
async function close(key: string, session: Ort.InferenceSession): Promise<void> {
  if (perGraphPath('QUANTC_ORT_PROFILE', key)) session.endProfiling();
  await session.release();
}

/**
 * `PREFIX-<graph key>` where environment variable `variable` (QUANTC_ORT_SAVE,
 * QUANTC_ORT_PROFILE) gives a PREFIX and QUANTC_ORT_PROFILE_MATCH, when set,
 * matches graph `key`; undefined otherwise.
 */
function perGraphPath(variable: 'QUANTC_ORT_SAVE' | 'QUANTC_ORT_PROFILE', key: string): string | undefined {
  const prefix = process.env[variable];
  if (!prefix) return undefined;
  const match = process.env.QUANTC_ORT_PROFILE_MATCH;
  let pattern: RegExp | undefined;
  try {
    pattern = match ? new RegExp(match) : undefined;
  } catch (e) {
    throw new RuntimeUnavailableError(`QUANTC_ORT_PROFILE_MATCH is not a regular expression (${(e as Error).message})`);
  }
  return !pattern || pattern.test(key) ? `${prefix}-${key.replace(/[^\w.-]/g, '_')}` : undefined;
}

/**
 * What a failed CUDA session creation says: a missing provider (and how to
 * install it) until one session has loaded on that card in this process
 * (the CLI loads a one-node graph on each first); after that, the graph's own error.
 */
export function cudaSessionError(message: string, key: string, deviceId: number | undefined, loadedBefore: boolean): string {
  const first = message.split('\n')[0]!.trim();
  const on = deviceId === undefined ? '' : ` on cuda:${deviceId}`;
  return loadedBefore
    ? `onnxruntime could not load graph ${key}${on} (${first})`
    : `the CUDA execution provider is not available${on} (${first}); run \`npm run setup:cuda\` on a machine with CUDA 13 and cuDNN 9, or use --device cpu`;
}
