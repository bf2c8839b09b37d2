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
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cwdSourceHost } from '../../src/cli/cwd-host.js';
import { ForwardModel, type TokenBatch } from '../../src/execute/forward/executor.js';
import { jobFromPlan } from '../../src/execute/from-plan.js';
import { gptqJob } from '../../src/execute/gptq/gptq-job.js';
import { allowCudaTf32, emptyRuntimeTimings, type Device } from '../../src/execute/runtime.js';
import { defaultPrecision, tf32Allowed, type Precision } from '../../src/execute/forward/precision.js';
import { solveMode } from '../../src/execute/gptq/graph-solve.js';
import { planRecipe } from '../../src/plan/plan-recipe.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TORCH_SCRIPT = join(ROOT, 'test/bench/torch_gptq.py');

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** One engine's run: seconds per layer by step. */
export interface GptqBenchRow {
  readonly engine: 'quantc' | 'pytorch';
  readonly size: string;
  readonly device: Device;
  readonly tokens: number;
  readonly seconds: number;
  readonly layers: readonly { layer: number; statistics: number; solve: number; propagate: number }[];
  /** quantc: peak resident host memory; PyTorch: peak device memory (bytes). */
  readonly peakBytes: number;
  /** quantc: the layer passes' time in graph building, session creation and onnxruntime runs (the rest is JavaScript). */
  readonly profile?: { buildSeconds: number; createSeconds: number; runSeconds: number; runs: number; sessions: number };
  readonly note?: string;
}

function python(py: string, args: readonly string[]): string {
  const r = spawnSync(py, [TORCH_SCRIPT, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${py} torch_gptq.py ${args[0]} failed (${r.status}): ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
  return r.stdout.trim().split('\n').pop()!;
}

/** Deterministic token batches (batch size 1) below `vocab`. */
function tokenBatches(count: number, seq: number, vocab: number): TokenBatch[] {
  let s = 12345;
  const next = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % vocab);
  return Array.from({ length: count }, () => [Array.from({ length: seq }, next)]);
}

/** Runs quantc's GPTQ stage on `dir`. */
async function quantcRun(dir: string, size: string, batches: readonly TokenBatch[], device: Device, precision?: Precision): Promise<GptqBenchRow> {
  const recipe = join(dir, 'gptq.yaml');
  const ignore = size === 'moe64' ? '[lm_head, "re:.*mlp.gate$"]' : '[lm_head]';
  await writeFile(recipe, `quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: ${ignore}\n`);
  const planned = await planRecipe(recipe, dir, { source: cwdSourceHost('/') }, 'bench');
  if (!planned.build) throw new Error(`bench: the GPTQ recipe did not plan: ${JSON.stringify(planned.diagnostics)}`);
  const job = jobFromPlan(planned.build, { modelDir: dir, outDir: join(dir, 'out'), device, recipeYaml: '', moe: planned.ir!.moe });
  const model = await ForwardModel.open(dir, device);
  // The precision apply uses by default (bf16 on CUDA for a bf16 checkpoint), TF32 with it (decided before the first session).
  allowCudaTf32(tf32Allowed(precision, device, model.config.dtype, model.config.modelType));
  const resolved = model.usePrecision(precision ?? defaultPrecision(device, model.config.dtype));
  // Where the layer passes spend their time: graph building, session creation, onnxruntime runs.
  const profile = { build: 0, ...emptyRuntimeTimings() };
  model.timings = profile;
  const t0 = performance.now();
  const run = await gptqJob(job, model, batches);
  const seconds = (performance.now() - t0) / 1000;
  return {
    engine: 'quantc',
    size,
    device,
    tokens: batches.length * batches[0]![0]!.length,
    seconds,
    layers: run.timings.map((t) => ({ layer: t.layer, statistics: t.statistics / 1000, solve: t.modify / 1000, propagate: t.propagate / 1000 })),
    peakBytes: process.resourceUsage().maxRSS * 1024,
    profile: { buildSeconds: profile.build / 1000, createSeconds: profile.create / 1000, runSeconds: profile.run / 1000, runs: profile.runs, sessions: profile.sessions },
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
    if (!existsSync(join(dir, 'config.json'))) python(options.python, ['make', dir, '--size', size]);
    const batches = tokenBatches(Math.max(1, Math.floor(options.tokens / options.seqLen)), options.seqLen, 32000);
    const tokensFile = join(dir, 'tokens.json');
    await writeFile(tokensFile, JSON.stringify(batches));
    push(await quantcRun(dir, size, batches, options.device, options.precision));
    if (options.torch) {
      const r = JSON.parse(python(options.python, ['run', dir, tokensFile, '--device', options.device])) as { seconds: number; layers: GptqBenchRow['layers']; peak_bytes: number; torch: string; device_name: string };
      push({ engine: 'pytorch', size, device: options.device, tokens: batches.length * options.seqLen, seconds: r.seconds, layers: r.layers, peakBytes: r.peak_bytes, note: `torch ${r.torch} on ${r.device_name}` });
    }
  }
  return rows;
}

/** One line per row: total and the per-layer mean of each step. */
export function formatGptqRow(r: GptqBenchRow): string {
  const mean = (k: 'statistics' | 'solve' | 'propagate'): string => (r.layers.reduce((a, l) => a + l[k], 0) / r.layers.length).toFixed(2);
  return `gptq ${r.size} ${r.engine} on ${r.device}, ${r.tokens} tokens: ${r.seconds.toFixed(1)} s; per layer statistics ${mean('statistics')} s, solve ${mean('solve')} s, propagation ${mean('propagate')} s; peak ${(r.peakBytes / 2 ** 30).toFixed(1)} GiB${r.note ? ` (${r.note})` : ''}${r.profile ? `; layer passes: build ${r.profile.buildSeconds.toFixed(1)} s, ${r.profile.sessions} sessions ${r.profile.createSeconds.toFixed(1)} s, ${r.profile.runs} runs ${r.profile.runSeconds.toFixed(1)} s` : ''}`;
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
