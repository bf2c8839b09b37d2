/**
 * GPTQ per layer: quantc's sequential pipeline (pass A with the Hessians in
 * the layer graphs, the blocked solve, pass B) against a PyTorch eager GPTQ
 * of the same weights on the same batches and device
 * (`test/bench/torch_gptq.py`), W4A16 (int4, group 128, actorder static).
 *
 *   node dist/test/bench/gptq.js [--size 1b4,moe64] [--tokens N] [--seq-len T]
 *     [--device cpu|cuda] [--torch 0|1] [--python python3] [--json FILE]
 *
 * Models (made by torch_gptq.py in the temp folder on first use): `1b4`,
 * TinyLlama-1.1B's layer shape (hidden 2048, MLP 5632, 32/4 heads) with 4
 * layers, and `moe64`, a 2-layer qwen3_moe with 64 experts (top 8). Per
 * layer: statistics (pass A), solve, propagation (pass B), in seconds, and
 * the process's peak resident memory. `QUANTC_GPTQ_SOLVE=graph|js` picks
 * quantc's solve (default: graphs).
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TokenBatch } from '../../src/execute/forward/executor.js';
import type { Precision } from '../../src/execute/forward/precision.js';
import { solveMode } from '../../src/execute/gptq/graph-solve.js';
import { gptqJob } from '../../src/execute/gptq/gptq-job.js';
import type { Device } from '../../src/execute/runtime.js';
import { deviceMemorySampler, flag, formatLayerPassProfile, layerPassProfile, openForStage, plannedJob, python, tokenBatches, type LayerPassProfile } from './stage-bench.js';

/** One engine's run: seconds per layer by step. */
export interface GptqBenchRow {
  readonly engine: 'quantc' | 'pytorch';
  readonly size: string;
  readonly device: Device;
  readonly tokens: number;
  readonly seconds: number;
  readonly layers: readonly { layer: number; statistics: number; solve: number; propagate: number }[];
  /** quantc: peak resident host memory; PyTorch: peak device memory it allocated (bytes). */
  readonly peakBytes: number;
  /** The card's peak used memory during the run above what it used before, both engines alike (bytes; nvidia-smi, CUDA only). */
  readonly deviceBytes?: number;
  /** quantc: the layer passes' time in graph building, session creation and onnxruntime runs (the rest is JavaScript). */
  readonly profile?: LayerPassProfile;
  /** quantc: seconds before the first layer (embedding the batches, stacking them) and after the last (releasing sessions, the calibrated tensors). */
  readonly outside?: { readonly before: number; readonly after: number };
  /** quantc: every module's logged loss, summed: what compares two builds' results on the same card. */
  readonly lossSum?: number;
  readonly note?: string;
}

/** Runs quantc's GPTQ stage on `dir`. */
async function quantcRun(dir: string, size: string, batches: readonly TokenBatch[], device: Device, precision?: Precision): Promise<GptqBenchRow> {
  const ignore = size === 'moe64' ? '[lm_head, "re:.*mlp.gate$"]' : '[lm_head]';
  const job = await plannedJob(dir, 'gptq.yaml', `quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: ${ignore}\n`, device);
  const sampler = deviceMemorySampler(device);
  const { model, resolved, timings } = await openForStage(dir, device, precision);
  const t0 = performance.now();
  let firstLayer: number | undefined;
  let lastLayer = t0;
  const run = await gptqJob(job, model, batches, { onLayerStart: () => (firstLayer ??= performance.now()), onLayerDone: () => (lastLayer = performance.now()) });
  const t1 = performance.now();
  const seconds = (t1 - t0) / 1000;
  const deviceBytes = (await sampler.stop())?.bytes;
  return {
    engine: 'quantc',
    size,
    device,
    tokens: batches.length * batches[0]![0]!.length,
    seconds,
    layers: run.timings.map((t) => ({ layer: t.layer, statistics: t.statistics / 1000, solve: t.modify / 1000, propagate: t.propagate / 1000 })),
    peakBytes: process.resourceUsage().maxRSS * 1024,
    ...(deviceBytes === undefined ? {} : { deviceBytes }),
    profile: layerPassProfile(timings),
    lossSum: run.reports.reduce((a, r) => a + r.loss, 0),
    outside: { before: ((firstLayer ?? t0) - t0) / 1000, after: (t1 - lastLayer) / 1000 },
    note: `${run.reports.length} modules from ${run.hessians} Hessians, ${resolved.runs}, ${solveMode()} solve`,
  };
}

/** Runs the benchmark; rows as measured. */
export async function benchGptq(options: { sizes: readonly string[]; tokens: number; seqLen: number; device: Device; torch: boolean; python: string; onRow?: (r: GptqBenchRow) => void; precision?: Precision }): Promise<GptqBenchRow[]> {
  const rows: GptqBenchRow[] = [];
  const push = (r: GptqBenchRow): void => {
    rows.push(r);
    options.onRow?.(r);
  };
  for (const size of options.sizes) {
    const dir = join(tmpdir(), `quantc-bench-gptq-${size}`);
    await mkdir(dir, { recursive: true });
    if (!existsSync(join(dir, 'config.json'))) python(options.python, 'torch_gptq.py', ['make', dir, '--size', size]);
    const batches = tokenBatches(Math.max(1, Math.floor(options.tokens / options.seqLen)), options.seqLen, 32000);
    const tokensFile = join(dir, 'tokens.json');
    await writeFile(tokensFile, JSON.stringify(batches));
    push(await quantcRun(dir, size, batches, options.device, options.precision));
    if (options.torch) {
      const sampler = deviceMemorySampler(options.device);
      const r = JSON.parse(python(options.python, 'torch_gptq.py', ['run', dir, tokensFile, '--device', options.device])) as { seconds: number; layers: GptqBenchRow['layers']; peak_bytes: number; torch: string; device_name: string };
      const deviceBytes = (await sampler.stop())?.bytes;
      push({ engine: 'pytorch', size, device: options.device, tokens: batches.length * options.seqLen, seconds: r.seconds, layers: r.layers, peakBytes: r.peak_bytes, ...(deviceBytes === undefined ? {} : { deviceBytes }), note: `torch ${r.torch} on ${r.device_name}` });
    }
  }
  return rows;
}

/** One line per row: total and the per-layer mean of each step. */
export function formatGptqRow(r: GptqBenchRow): string {
  const mean = (k: 'statistics' | 'solve' | 'propagate'): string => (r.layers.reduce((a, l) => a + l[k], 0) / r.layers.length).toFixed(2);
  return `gptq ${r.size} ${r.engine} on ${r.device}, ${r.tokens} tokens: ${r.seconds.toFixed(1)} s; per layer statistics ${mean('statistics')} s, solve ${mean('solve')} s, propagation ${mean('propagate')} s; peak ${(r.peakBytes / 2 ** 30).toFixed(1)} GiB${r.deviceBytes === undefined ? '' : `, card ${(r.deviceBytes / 2 ** 30).toFixed(1)} GiB`}${r.note ? ` (${r.note})` : ''}${r.lossSum === undefined ? '' : `; loss sum ${r.lossSum.toPrecision(9)}`}${r.outside ? `; before the first layer ${r.outside.before.toFixed(2)} s, after the last ${r.outside.after.toFixed(2)} s` : ''}${formatLayerPassProfile(r.profile)}`;
}

/** The benchmark's options from command-line flags. */
export function parseGptqBenchArgs(args: readonly string[]): Parameters<typeof benchGptq>[0] {
  return {
    sizes: (flag(args, '--size') ?? '1b4,moe64').split(','),
    tokens: Number(flag(args, '--tokens') ?? 128 * 2048),
    seqLen: Number(flag(args, '--seq-len') ?? 2048),
    device: (flag(args, '--device') ?? 'cuda') as Device,
    torch: flag(args, '--torch') !== '0',
    python: flag(args, '--python') ?? 'python3',
    precision: flag(args, '--precision') as Precision | undefined,
  };
}

if (process.argv[1]?.endsWith('gptq.js')) {
  const args = process.argv.slice(2);
  const rows = await benchGptq({ ...parseGptqBenchArgs(args), onRow: (r) => console.log(formatGptqRow(r)) });
  const out = flag(args, '--json');
  if (out) await writeFile(out, JSON.stringify(rows, null, 2));
}
