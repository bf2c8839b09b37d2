/**
 * Weight-pass benchmark for `apply`: a synthetic bf16 checkpoint of square
 * Linear weights is quantized with a few data-free schemes; throughput is
 * bf16 bytes read per second of weight processing (read, observe, quantize,
 * pack, write), and end to end. Next to it, the limits the pass works
 * against, measured on the same machine: reading the same checkpoint from
 * the page cache, and (on CUDA) uploading to each GPU and to all at once.
 *
 *     node dist/test/bench/apply.js [cpu|cuda|cuda:0,1,…]… [--schemes W4A16,…] [--workers N] [--repeat N] [--tensors N]
 *       [--torch] [--python python3]
 *
 * Several devices (`cuda cpu`) run one after another on the same checkpoint.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyJob } from '../../src/execute/apply.js';
import { formatDeviceList, parseDeviceList, type DeviceSlot } from '../../src/execute/device-list.js';
import { GraphBuilder, OnnxType } from '../../src/execute/onnx/graph-builder.js';
import { GraphRuntime } from '../../src/execute/runtime.js';
import { openCheckpoint, readTensorBytes } from '../../src/execute/safetensors-reader.js';
import { SafetensorsFileWriter, type OutputTensorSpec } from '../../src/execute/safetensors-writer.js';
import { presetScheme } from '../../src/ir/presets.js';
import { xorshift32 } from './xorshift.js';

/** One benchmark result. */
export interface ApplyBenchResult {
  readonly scheme: string;
  /** The device list, as written on the command line. */
  readonly device: string;
  readonly tensors: number;
  readonly shape: readonly [number, number];
  readonly bytesIn: number;
  /** bf16 weight bytes per second of weight processing, in GB/s. */
  readonly weightGBps: number;
  /** bf16 weight bytes per second of the whole run (including copying and setup), in GB/s. */
  readonly endToEndGBps: number;
  readonly seconds: number;
}

/** Options of {@link benchApply}. */
export interface ApplyBenchOptions {
  readonly schemes?: readonly string[];
  readonly tensors?: number;
  readonly rows?: number;
  readonly cols?: number;
  /** `cpu`, `cuda` or a list (`cuda:0,1`). */
  readonly device?: string;
  /** Several of those, each run in turn on the same checkpoint (instead of `device`). */
  readonly devices?: readonly string[];
  /** CPU worker threads (default: apply's, one per core from two cores up). */
  readonly cpuWorkers?: number;
  /** Times each scheme runs (the best is kept; default 1). */
  readonly repeat?: number;
}

/** What the weight pass works against, in GB/s. */
export interface ApplyLimits {
  /**
   * Reading the benchmark checkpoint's tensors from the page cache, one
   * after another, into buffers already in use (as apply's pipeline does
   * once its buffer pool has filled): the copy out of the page cache.
   */
  readonly pageCacheReadGBps: number;
  /**
   * The same into a fresh buffer per tensor (as apply's first reads, up to
   * its read-ahead budget): the kernel zero-fills each new page on first
   * touch, so this is the slower figure of a small checkpoint.
   */
  readonly freshReadGBps?: number;
  /** Writing 1 GiB to a new file next to the checkpoint and flushing it to disk (as apply's output is flushed before it is renamed into place). */
  readonly diskWriteGBps?: number;
  /** Host-to-device upload of 256 MiB per GPU alone (CUDA only), in list order. */
  readonly uploadGBps?: readonly number[];
  /** The same uploads to every listed GPU at once, all bytes over the time (CUDA, several GPUs). */
  readonly uploadAllGBps?: number;
  /** Device-to-host: a 256 MiB output of a run on the first GPU, as onnxruntime-node returns it (CUDA only). */
  readonly downloadGBps?: number;
  /** The same output copied into memory the run is handed, written before (`GraphRuntime.run`'s `into`). */
  readonly downloadReusedGBps?: number;
}

function randomBf16(count: number, seed: number): Uint8Array {
  // Normal-ish values (std ≈ 0.02) from a xorshift generator; only the magnitude distribution matters.
  const out = new Uint16Array(count);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const random = xorshift32(seed);
  for (let i = 0; i < count; i++) {
    const a = random() / 4294967296;
    const b = random() / 4294967296;
    f[0] = 0.02 * (a + b - 1) * 2.45;
    out[i] = u[0] >>> 16;
  }
  return new Uint8Array(out.buffer);
}

/** Distinct random tensors in a synthetic checkpoint; later ones repeat them (generating 8 GB takes longer than quantizing it). */
const DISTINCT_TENSORS = 16;

/** Writes the synthetic checkpoint and returns its folder and Linear names. */
async function syntheticModel(tensors: number, rows: number, cols: number): Promise<{ dir: string; modules: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'quantc-bench-'));
  const modules = Array.from({ length: tensors }, (_, i) => `model.layers.${i}.mlp.down_proj`);
  const specs: OutputTensorSpec[] = modules.map((m) => ({ name: `${m}.weight`, dtype: 'BF16', shape: [rows, cols], byteLength: rows * cols * 2 }));
  const w = await SafetensorsFileWriter.create(join(dir, 'model.safetensors'), specs);
  const made = new Map<number, Uint8Array>();
  for (let i = 0; i < tensors; i++) {
    const seed = (i % DISTINCT_TENSORS) + 1;
    if (!made.has(seed)) made.set(seed, randomBf16(rows * cols, seed));
    await w.write(specs[i].name, made.get(seed)!);
  }
  await w.close();
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'] }, null, 2));
  return { dir, modules };
}

/** Best GB/s over `runs` timings of `bytes` moved by `once`. */
async function bestGBps(bytes: number, runs: number, once: () => Promise<unknown>): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await once();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return bytes / best / 1e9;
}

/** A graph that takes uint16 `x` and returns one number computed from all of it, so that only the upload is large. */
function uploadGraph(): Uint8Array {
  const g = new GraphBuilder();
  const x = g.op('Cast', [g.input('x', OnnxType.uint16, ['n'])], { to: OnnxType.float });
  g.output(g.op('ReduceMax', [x, g.i64([0])], { keepdims: 1 }), 'y', OnnxType.float, [1]);
  return g.build('upload');
}

/** A graph that returns `n` uint16 values made on the device from one input number, so that only the download is large. */
function downloadGraph(): Uint8Array {
  const g = new GraphBuilder();
  const v = g.op('Cast', [g.input('v', OnnxType.float, [1])], { to: OnnxType.uint16 });
  g.output(g.op('Expand', [v, g.input('n', OnnxType.int64, [1])]), 'y', OnnxType.uint16, ['n']);
  return g.build('download');
}

/** Host-to-device GB/s of each CUDA device alone and of all at once (256 MiB feeds, best of 5 after a warm-up). */
async function uploadLimits(slots: readonly DeviceSlot[]): Promise<Pick<ApplyLimits, 'uploadGBps' | 'uploadAllGBps' | 'downloadGBps' | 'downloadReusedGBps'>> {
  const data = new Uint16Array(2 ** 27);
  for (let i = 0; i < data.length; i++) data[i] = i & 0x3fff;
  const feed = { x: { type: 'uint16' as const, data, dims: [data.length] } };
  const rts = slots.map((s) => {
    const rt = new GraphRuntime('cuda');
    rt.deviceId = s.deviceId;
    return rt;
  });
  try {
    for (const rt of rts) await rt.run('upload', uploadGraph, feed);
    const uploadGBps: number[] = [];
    for (const rt of rts) uploadGBps.push(await bestGBps(data.byteLength, 5, () => rt.run('upload', uploadGraph, feed)));
    const down = { v: { type: 'float32' as const, data: new Float32Array([3]), dims: [1] }, n: { type: 'int64' as const, data: new BigInt64Array([BigInt(data.length)]), dims: [1] } };
    await rts[0]!.run('download', downloadGraph, down);
    const downloadGBps = await bestGBps(data.byteLength, 5, () => rts[0]!.run('download', downloadGraph, down));
    const into = { y: { type: 'uint16' as const, data: new Uint16Array(data.length).fill(1), dims: [data.length] } };
    const downloadReusedGBps = await bestGBps(data.byteLength, 5, () => rts[0]!.run('download', downloadGraph, down, undefined, into));
    if (rts.length === 1) return { uploadGBps, downloadGBps, downloadReusedGBps };
    const uploadAllGBps = await bestGBps(data.byteLength * rts.length, 5, () => Promise.all(rts.map((rt) => rt.run('upload', uploadGraph, feed))));
    return { uploadGBps, uploadAllGBps, downloadGBps, downloadReusedGBps };
  } finally {
    for (const rt of rts) await rt.dispose();
  }
}

/** Page-cache read GB/s of a checkpoint's tensors (best of 3; the first pass also brings them into the cache), into reused and into fresh buffers. */
async function pageCacheRead(dir: string): Promise<Pick<ApplyLimits, 'pageCacheReadGBps' | 'freshReadGBps'>> {
  const index = await openCheckpoint(dir);
  const tensors = [...index.tensors.values()];
  for (const t of tensors) await readTensorBytes(t);
  const reused = new Map<number, Uint8Array>();
  for (const t of tensors) if (!reused.has(t.byteLength)) reused.set(t.byteLength, await readTensorBytes(t));
  const pageCacheReadGBps = await bestGBps(index.totalBytes, 3, async () => {
    for (const t of tensors) await readTensorBytes(t, reused.get(t.byteLength));
  });
  const freshReadGBps = await bestGBps(index.totalBytes, 3, async () => {
    for (const t of tensors) await readTensorBytes(t);
  });
  return { pageCacheReadGBps, freshReadGBps };
}

/** Disk write GB/s: 1 GiB written in 64 MiB pieces to a new file in `dir`, then flushed (best of 2). */
async function diskWrite(dir: string): Promise<number> {
  const piece = randomBf16(2 ** 25, 7);
  const file = join(dir, 'disk-write.bin');
  try {
    return await bestGBps(2 ** 30, 2, async () => {
      await rm(file, { force: true });
      const fh = await open(file, 'w');
      try {
        for (let at = 0; at < 2 ** 30; at += piece.byteLength) await fh.write(piece, 0, piece.byteLength, at);
        await fh.sync();
      } finally {
        await fh.close();
      }
    });
  } finally {
    await rm(file, { force: true });
  }
}

/** Runs the benchmark; defaults: W4A16, FP8_DYNAMIC, NVFP4A16 on 8 × [4096, 4096] bf16 (256 MiB) on the CPU. */
export async function benchApply(options: ApplyBenchOptions = {}): Promise<{ results: ApplyBenchResult[]; limits: ApplyLimits }> {
  const schemes = options.schemes ?? ['W4A16', 'FP8_DYNAMIC', 'NVFP4A16'];
  const tensors = options.tensors ?? 8;
  const rows = options.rows ?? 4096;
  const cols = options.cols ?? 4096;
  const lists = (options.devices ?? [options.device ?? 'cpu']).map((d) => parseDeviceList(d));
  const gpus = lists.find((l) => l[0]!.device === 'cuda');
  const { dir, modules } = await syntheticModel(tensors, rows, cols);
  const results: ApplyBenchResult[] = [];
  let limits: ApplyLimits;
  try {
    limits = { ...(await pageCacheRead(dir)), diskWriteGBps: await diskWrite(dir), ...(gpus ? await uploadLimits(gpus) : {}) };
    for (const scheme of schemes) for (const devices of lists) {
      const device = formatDeviceList(devices);
      let best: ApplyBenchResult | null = null;
      for (let r = 0; r < (options.repeat ?? 1); r++) {
        const out = join(dir, `out-${scheme}`);
        const summary = await applyJob({
          modelDir: dir,
          outDir: out,
          device: devices[0]!.device,
          ...(devices.length > 1 || devices[0]!.deviceId !== undefined ? { devices } : {}),
          ...(options.cpuWorkers === undefined ? {} : { cpuWorkers: options.cpuWorkers }),
          groups: [{ name: 'group_0', scheme: presetScheme(scheme, ['Linear'])! }],
          modules: modules.map((name) => ({ name, group: 0 })),
          fusedExperts: [],
          ignore: [],
          kvCacheScheme: null,
          recipeYaml: '',
        });
        const result: ApplyBenchResult = {
          scheme,
          device,
          tensors,
          shape: [rows, cols],
          bytesIn: summary.bytesIn,
          weightGBps: summary.weightGBps,
          endToEndGBps: summary.bytesIn / summary.seconds / 1e9,
          seconds: summary.seconds,
        };
        if (!best || result.seconds < best.seconds) best = result;
        await rm(out, { recursive: true, force: true });
      }
      results.push(best!);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { results, limits };
}

/** One line per result, then the limits. */
export function formatApplyBench(results: readonly ApplyBenchResult[], limits: ApplyLimits): string[] {
  const lines = results.map(
    (r) => `apply ${r.scheme.padEnd(12)} on ${r.device}: ${r.tensors} × ${r.shape.join('×')} bf16 (${(r.bytesIn / 2 ** 20).toFixed(0)} MiB), weight pass ${r.weightGBps.toFixed(3)} GB/s, end to end ${r.endToEndGBps.toFixed(3)} GB/s (${r.seconds.toFixed(2)} s)`,
  );
  lines.push(`apply limits: page-cache read ${limits.pageCacheReadGBps.toFixed(2)} GB/s into buffers in use${limits.freshReadGBps === undefined ? '' : `, ${limits.freshReadGBps.toFixed(2)} GB/s into fresh ones`}`);
  if (limits.diskWriteGBps !== undefined) lines.push(`apply limits: disk write ${limits.diskWriteGBps.toFixed(2)} GB/s (1 GiB written and flushed)`);
  if (limits.uploadGBps) lines.push(`apply limits: host-to-device ${limits.uploadGBps.map((g) => `${g.toFixed(2)}`).join(' / ')} GB/s per GPU${limits.uploadAllGBps === undefined ? '' : `, ${limits.uploadAllGBps.toFixed(2)} GB/s to all at once`}`);
  if (limits.downloadGBps !== undefined) lines.push(`apply limits: device-to-host ${limits.downloadGBps.toFixed(2)} GB/s (an onnxruntime output)${limits.downloadReusedGBps === undefined ? '' : `, ${limits.downloadReusedGBps.toFixed(2)} GB/s into a buffer written before`}`);
  return lines;
}

const TORCH_SCRIPT = join(fileURLToPath(new URL('../../../', import.meta.url)), 'test/bench/torch_rtn.py');

/** PyTorch's lines for the same pass (torch_rtn.py on the first device's kind), or why there are none. */
export function torchApplyLines(python: string, device: string, tensors = 8, schemes?: readonly string[], repeat = 1): string[] {
  const r = spawnSync(python, [TORCH_SCRIPT, device.startsWith('cuda') ? 'cuda' : 'cpu', String(tensors), (schemes ?? []).join(','), String(repeat)], { encoding: 'utf8', env: { ...process.env } });
  if (r.status !== 0) return [`torch_rtn.py did not run (${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]})`];
  return r.stdout.trim().split('\n');
}

if (process.argv[1]?.endsWith('apply.js')) {
  const args = process.argv.slice(2);
  const flag = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const firstFlag = args.findIndex((a) => a.startsWith('--'));
  const positional = firstFlag < 0 ? args : args.slice(0, firstFlag);
  const devices = positional.length > 0 ? positional : ['cpu'];
  const workers = flag('--workers');
  const schemes = flag('--schemes')?.split(',');
  const tensors = Number(flag('--tensors') ?? 8);
  const { results, limits } = await benchApply({ devices, tensors, ...(workers === undefined ? {} : { cpuWorkers: Number(workers) }), ...(schemes ? { schemes } : {}), repeat: Number(flag('--repeat') ?? 1) });
  for (const line of formatApplyBench(results, limits)) console.log(line);
  if (args.includes('--torch')) for (const line of torchApplyLines(flag('--python') ?? 'python3', devices.find((d) => d.startsWith('cuda')) ?? devices[0]!, tensors, schemes, Number(flag('--repeat') ?? 1))) console.log(line);
}
