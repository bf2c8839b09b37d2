/**
 * AWQ per layer: quantc's sequential pipeline (pass A returning the parents'
 * inputs, the batched grid search, pass B) against a PyTorch eager AWQ of
 * the same weights on the same batches and device (`test/bench/torch_awq.py`),
 * W4A16_ASYM (int4, group 128), n_grid 20, duo scaling.
 *
 *   node dist/test/bench/awq.js [--tokens N] [--seq-len T] [--device cpu|cuda]
 *     [--torch 0|1] [--python python3] [--json FILE]
 *
 * Model (made by torch_gptq.py in the temp folder on first use): `1b4`,
 * TinyLlama-1.1B's layer shape (hidden 2048, MLP 5632, 32/4 heads) with 4
 * layers. Per layer: statistics (pass A), grid search, propagation (pass B),
 * in seconds, and the process's peak resident memory.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { awqJob } from '../../src/execute/awq/awq-job.js';
import type { TokenBatch } from '../../src/execute/forward/executor.js';
import type { Precision } from '../../src/execute/forward/precision.js';
import type { Device } from '../../src/execute/runtime.js';
import { deviceMemorySampler, flag, formatLayerPassProfile, layerPassProfile, openForStage, plannedJob, python, tokenBatches, type LayerPassProfile } from './stage-bench.js';

/** One engine's run: seconds per layer by step. */
export interface AwqBenchRow {
  readonly engine: 'quantc' | 'pytorch';
  readonly device: Device;
  readonly tokens: number;
  readonly seconds: number;
  readonly layers: readonly { layer: number; statistics: number; search: number; propagate: number }[];
  /** quantc: peak resident host memory; PyTorch: peak device memory it allocated (bytes). */
  readonly peakBytes: number;
  /** The card's peak used memory during the run above what it used before, both engines alike (bytes; nvidia-smi, CUDA only). */
  readonly deviceBytes?: number;
  /** quantc: the layer passes' time in graph building, session creation and onnxruntime runs (the rest is JavaScript). */
  readonly profile?: LayerPassProfile;
  /** quantc: the grid searches' onnxruntime sessions and runs, and the activation means computed in JavaScript. */
  readonly search?: { sessions: number; createSeconds: number; runs: number; runSeconds: number; meansSeconds: number };
  /** quantc: the grid point each mapping kept, in order: what compares two builds' results on the same card. */
  readonly choices?: readonly number[];
  readonly note?: string;
}

/** Runs quantc's AWQ stage on `dir`. */
async function quantcRun(dir: string, batches: readonly TokenBatch[], device: Device, precision?: Precision): Promise<AwqBenchRow> {
  const job = await plannedJob(dir, 'awq.yaml', 'quant_stage:\n  quant_modifiers:\n    AWQModifier: {}\n    QuantizationModifier:\n      targets: [Linear]\n      scheme: W4A16_ASYM\n      ignore: [lm_head]\n', device);
  const sampler = deviceMemorySampler(device);
  const { model, resolved, timings } = await openForStage(dir, device, precision);
  const t0 = performance.now();
  const run = await awqJob(job, model, batches);
  const seconds = (performance.now() - t0) / 1000;
  const deviceBytes = (await sampler.stop())?.bytes;
  return {
    engine: 'quantc',
    device,
    tokens: batches.length * batches[0]![0]!.length,
    seconds,
    layers: run.timings.map((t) => ({ layer: t.layer, statistics: t.statistics / 1000, search: t.modify / 1000, propagate: t.propagate / 1000 })),
    peakBytes: process.resourceUsage().maxRSS * 1024,
    ...(deviceBytes === undefined ? {} : { deviceBytes }),
    profile: layerPassProfile(timings),
    search: { sessions: run.profile.search.sessions, createSeconds: run.profile.search.create / 1000, runs: run.profile.search.runs, runSeconds: run.profile.search.run / 1000, meansSeconds: run.profile.means / 1000 },
    choices: run.reports.map((r) => r.best),
    note: `${run.reports.length} mappings, ${resolved.runs}, search on ${run.stacked ? 'the layer input stacks' : 'cached inputs'}`,
  };
}

/** Runs the benchmark; rows as measured. */
export async function benchAwq(options: { tokens: number; seqLen: number; device: Device; torch: boolean; python: string; onRow?: (r: AwqBenchRow) => void; precision?: Precision }): Promise<AwqBenchRow[]> {
  const rows: AwqBenchRow[] = [];
  const push = (r: AwqBenchRow): void => {
    rows.push(r);
    options.onRow?.(r);
  };
  const dir = join(tmpdir(), 'quantc-bench-gptq-1b4');
  await mkdir(dir, { recursive: true });
  if (!existsSync(join(dir, 'config.json'))) python(options.python, 'torch_gptq.py', ['make', dir, '--size', '1b4']);
  const batches = tokenBatches(Math.max(1, Math.floor(options.tokens / options.seqLen)), options.seqLen, 32000);
  const tokensFile = join(dir, 'awq-tokens.json');
  await writeFile(tokensFile, JSON.stringify(batches));
  push(await quantcRun(dir, batches, options.device, options.precision));
  if (options.torch) {
    const sampler = deviceMemorySampler(options.device);
    const r = JSON.parse(python(options.python, 'torch_awq.py', ['run', dir, tokensFile, '--device', options.device])) as { seconds: number; layers: AwqBenchRow['layers']; peak_bytes: number; torch: string; device_name: string };
    const deviceBytes = (await sampler.stop())?.bytes;
    push({ engine: 'pytorch', device: options.device, tokens: batches.length * options.seqLen, seconds: r.seconds, layers: r.layers, peakBytes: r.peak_bytes, ...(deviceBytes === undefined ? {} : { deviceBytes }), note: `torch ${r.torch} on ${r.device_name}` });
  }
  return rows;
}

/** One line per row: total and the per-layer mean of each step. */
export function formatAwqRow(r: AwqBenchRow): string {
  const mean = (k: 'statistics' | 'search' | 'propagate'): string => (r.layers.reduce((a, l) => a + l[k], 0) / r.layers.length).toFixed(2);
  return `awq 1b4 ${r.engine} on ${r.device}, ${r.tokens} tokens: ${r.seconds.toFixed(1)} s; per layer statistics ${mean('statistics')} s, grid search ${mean('search')} s, propagation ${mean('propagate')} s; peak ${(r.peakBytes / 2 ** 30).toFixed(1)} GiB${r.deviceBytes === undefined ? '' : `, card ${(r.deviceBytes / 2 ** 30).toFixed(1)} GiB`}${r.note ? ` (${r.note})` : ''}${formatLayerPassProfile(r.profile)}${r.search ? `; searches: ${r.search.sessions} sessions ${r.search.createSeconds.toFixed(1)} s, ${r.search.runs} runs ${r.search.runSeconds.toFixed(1)} s, x_mean ${r.search.meansSeconds.toFixed(1)} s` : ''}${r.choices ? `; grid choices ${r.choices.join(',')}` : ''}`;
}

/** The benchmark's options from command-line flags. */
export function parseAwqBenchArgs(args: readonly string[]): Parameters<typeof benchAwq>[0] {
  return {
    tokens: Number(flag(args, '--tokens') ?? 128 * 2048),
    seqLen: Number(flag(args, '--seq-len') ?? 2048),
    device: (flag(args, '--device') ?? 'cuda') as Device,
    torch: flag(args, '--torch') !== '0',
    python: flag(args, '--python') ?? 'python3',
    precision: flag(args, '--precision') as Precision | undefined,
  };
}

if (process.argv[1]?.endsWith('awq.js')) {
  const args = process.argv.slice(2);
  const rows = await benchAwq({ ...parseAwqBenchArgs(args), onRow: (r) => console.log(formatAwqRow(r)) });
  const out = flag(args, '--json');
  if (out) await writeFile(out, JSON.stringify(rows, null, 2));
}
