/**
 * What the per-layer stage benches (gptq.ts, awq.ts) share: flags, token
 * batches, the PyTorch scripts, planning a recipe into a job, and opening
 * the model as `apply` does (default precision, TF32 with it) with its layer
 * passes profiled.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cwdSourceHost } from '../../src/cli/cwd-host.js';
import { ForwardModel, type ForwardTimings, type TokenBatch } from '../../src/execute/forward/executor.js';
import { defaultPrecision, tf32Allowed, type Precision, type ResolvedPrecision } from '../../src/execute/forward/precision.js';
import { jobFromPlan } from '../../src/execute/from-plan.js';
import { allowCudaTf32, emptyRuntimeTimings, type Device } from '../../src/execute/runtime.js';
import type { ApplyJob } from '../../src/execute/types.js';
import { planRecipe } from '../../src/plan/plan-recipe.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The value after `name` in `args`. */
export function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Runs `test/bench/SCRIPT ARGS…` with `py`; its last line of output. */
export function python(py: string, script: string, args: readonly string[]): string {
  const r = spawnSync(py, [join(ROOT, 'test/bench', script), ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${py} ${script} ${args[0]} failed (${r.status}): ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
  return r.stdout.trim().split('\n').pop()!;
}

/** Deterministic token batches (batch size 1) below `vocab`. */
export function tokenBatches(count: number, seq: number, vocab: number): TokenBatch[] {
  let s = 12345;
  const next = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % vocab);
  return Array.from({ length: count }, () => [Array.from({ length: seq }, next)]);
}

/** The job `apply` would run for `recipe` (YAML text, written into `dir`) on the model in `dir`. */
export async function plannedJob(dir: string, name: string, recipe: string, device: Device): Promise<ApplyJob> {
  const path = join(dir, name);
  await writeFile(path, recipe);
  const planned = await planRecipe(path, dir, { source: cwdSourceHost('/') }, 'bench');
  if (!planned.build) throw new Error(`bench: ${name} did not plan: ${JSON.stringify(planned.diagnostics)}`);
  return jobFromPlan(planned.build, { modelDir: dir, outDir: join(dir, 'out'), device, recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers });
}

/** Where a stage's layer passes spent their time (seconds): graph building, session creation, onnxruntime runs. */
export interface LayerPassProfile {
  readonly buildSeconds: number;
  readonly createSeconds: number;
  readonly runSeconds: number;
  readonly runs: number;
  readonly sessions: number;
  /** Of {@link runSeconds}, the runs that were the first of their session with their input shapes, and how many. */
  readonly firstRunSeconds?: number;
  readonly firstRuns?: number;
}

/**
 * The model in `dir` as `apply` opens it on `device`: the precision asked
 * (default: apply's), TF32 with it (decided before the first session), its
 * layer passes timed into `timings`.
 */
export async function openForStage(dir: string, device: Device, precision?: Precision): Promise<{ model: ForwardModel; resolved: ResolvedPrecision; timings: ForwardTimings }> {
  const model = await ForwardModel.open(dir, device);
  // QUANTC_BENCH_DEVICE_IDS=0,0: the looped passes' batches shared as `--device cuda:0,1` shares them, here over the
  // ordinals given (one device twice: two worker threads on one card, whose copies and kernels may overlap).
  const ids = process.env.QUANTC_BENCH_DEVICE_IDS;
  if (ids) model.deviceIds = ids.split(',').map(Number);
  allowCudaTf32(tf32Allowed(precision, device, model.config.dtype, model.config.modelType));
  const resolved = model.usePrecision(precision ?? defaultPrecision(device, model.config.dtype));
  const timings: ForwardTimings = { build: 0, ...emptyRuntimeTimings() };
  model.timings = timings;
  return { model, resolved, timings };
}

/** {@link LayerPassProfile} of `t`. */
export function layerPassProfile(t: ForwardTimings): LayerPassProfile {
  return { buildSeconds: t.build / 1000, createSeconds: t.create / 1000, runSeconds: t.run / 1000, runs: t.runs, sessions: t.sessions, firstRunSeconds: t.firstRuns / 1000, firstRuns: t.firstRunCount };
}

/** The profile as the rows print it (empty without one). */
export function formatLayerPassProfile(p: LayerPassProfile | undefined): string {
  const first = p?.firstRuns ? ` (the first with their shapes ${p.firstRunSeconds!.toFixed(1)} s × ${p.firstRuns})` : '';
  return p ? `; layer passes: build ${p.buildSeconds.toFixed(1)} s, ${p.sessions} sessions ${p.createSeconds.toFixed(1)} s, ${p.runs} runs ${p.runSeconds.toFixed(1)} s${first}` : '';
}

/** What {@link deviceMemorySampler} saw: the card's used memory above what it was before (bytes), and the sampling period. */
export interface DeviceMemoryPeak {
  readonly bytes: number;
  readonly periodMs: number;
}

/**
 * Samples the used memory of GPU `index` (one nvidia-smi query every
 * `periodMs`, appended to a file, so that samples taken while this process
 * waits on a synchronous child are kept) until `stop()`; undefined off CUDA
 * or without nvidia-smi. The figure is the card's, so it counts the CUDA
 * context and what the runtime's arena holds, for PyTorch's process as for
 * quantc's; no other process should use the card meanwhile.
 */
export function deviceMemorySampler(device: Device, index = 0, periodMs = 100): { stop(): Promise<DeviceMemoryPeak | undefined> } {
  const query = ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-i', String(index)];
  const before = device === 'cuda' ? spawnSync('nvidia-smi', query, { encoding: 'utf8' }) : undefined;
  const base = Number(before?.stdout?.trim());
  if (before === undefined || before.status !== 0 || !Number.isFinite(base)) return { stop: async () => undefined };
  const file = join(tmpdir(), `quantc-card-memory-${process.pid}-${Date.now()}.txt`);
  const loop = `while :; do nvidia-smi ${query.join(' ')} >> '${file}'; sleep ${periodMs / 1000}; done`;
  const child = spawn('sh', ['-c', loop], { stdio: 'ignore' });
  return {
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => {
          let peak = base;
          const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
          for (const line of text.split('\n')) if (line.trim() !== '' && Number.isFinite(Number(line))) peak = Math.max(peak, Number(line));
          rmSync(file, { force: true });
          resolve({ bytes: (peak - base) * 2 ** 20, periodMs });
        });
        child.kill();
      }),
  };
}
