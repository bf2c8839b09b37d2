/**
 * `npm run bench`: the figures quantc promises, measured on this machine.
 *
 * - `check` of a built-in recipe, cold CLI wall time (a fresh process each
 *   run, started as a user starts it: the `quantc` executable), next to
 *   `node -e 0` timed in the same loop, and without the startup snapshot;
 * - `plan` of Kimi-K2 (61 layers × 384 experts): compile time in process
 *   (recipe → IR → tree → rewrites → matching → plan) and CLI wall time;
 * - matching 10 patterns over the unpacked Kimi-K2 tree; expanding configs;
 * - with `--apply`: the data-free weight pass (bf16 GB/s), CPU, `--device cuda` or
 *   `--device cuda:0,1,…` (repeat `--device` to time several on one checkpoint), with its limits (page-cache read, host-to-device) and,
 *   with `--torch`, PyTorch's pass (torch_rtn.py) on the same machine;
 * - with `--gptq`: GPTQ per layer against a PyTorch eager GPTQ (see gptq.ts:
 *   `--size 1b4,moe64`, `--tokens`, `--seq-len`, `--device`);
 * - with `--awq`: AWQ per layer against a PyTorch eager AWQ search (see
 *   awq.ts: `--tokens`, `--seq-len`, `--device`);
 * - with `--calibrate`: calibration tokens/s against PyTorch eager forward
 *   passes (see calibrate.ts for its options: `--model-size tiny|1b`,
 *   `--tokens`, `--batch-size`, `--seq-len`, `--device cpu,cuda`,
 *   `--precision fp32,bf16`).
 *
 * - `--only`: only the sections asked for, without the planning figures;
 * - `--record FILE`: a JSON record of every figure with the machine (CPU,
 *   GPU and driver), the quantc commit and the command that made it; the
 *   records of GPU runs are kept under `docs/benchmarks/`.
 *
 * Medians over several runs; the first in-process run is reported as cold.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { CUDA_HEAP_ENV, heapSettings, heapUntuned, runsOnCuda } from '../../src/cli/cuda-heap.js';
import { cwdSourceHost } from '../../src/cli/cwd-host.js';
import { planRecipe } from '../../src/plan/plan-recipe.js';
import { renderPlanText } from '../../src/report/plan-text.js';
import { QUANTC_VERSION } from '../../src/version.js';
import { benchMatch } from './match.js';
import { benchModelLoad } from './model.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = `${ROOT}dist/cli/quantc`;
const PLAIN = `${ROOT}dist/cli/quantc.js`;

/** A command line to time: the executable and its arguments. */
type CommandLine = readonly [string, ...string[]];

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Wall {
  readonly median: number;
  readonly min: number;
  readonly exit: number;
}

/**
 * Wall times of each command line, each run in a fresh process. The lines
 * take turns within every round, so a busy spell of the machine slows all
 * of them alike and their difference stays meaningful. One round before
 * the timed ones brings the files into the page cache, as any earlier use
 * of quantc would have.
 */
function wallTimes(lines: readonly CommandLine[], runs: number): Wall[] {
  const times = lines.map((): number[] => []);
  const exits = lines.map(() => 0);
  for (let i = -1; i < runs; i++) {
    lines.forEach(([file, ...args], j) => {
      const t0 = performance.now();
      const r = spawnSync(file, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'ignore'] });
      if (i >= 0) times[j]!.push(performance.now() - t0);
      exits[j] = r.status ?? -1;
    });
  }
  return times.map((t, j) => ({ median: median(t), min: Math.min(...t), exit: exits[j]! }));
}

/** Wall times of `quantc ARGS` through the executable, each in a fresh process. */
function cliWall(args: readonly string[], runs: number): Wall {
  return wallTimes([[BIN, ...args]], runs)[0]!;
}

/** In-process compile time of a plan (no rendering), cold then warm median. */
async function planCompile(recipe: string, runs: number): Promise<{ cold: number; median: number; quantize: number; modules: number; render: number }> {
  const times: number[] = [];
  let quantize = 0;
  let modules = 0;
  let render = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const planned = await planRecipe(recipe, undefined, { source: cwdSourceHost(ROOT) }, QUANTC_VERSION);
    times.push(performance.now() - t0);
    if (!planned.build) throw new Error(`bench: ${recipe} did not plan`);
    quantize = planned.build.plan.quantize.length;
    modules = planned.build.plan.model.modulesAfterRewrites;
    const r0 = performance.now();
    renderPlanText(planned.build.plan);
    render = performance.now() - r0;
  }
  return { cold: times[0]!, median: median(times.slice(1)), quantize, modules, render };
}

function ms(x: number): string {
  return `${x.toFixed(1)} ms`;
}

/** Output of a command, or null when it cannot run here. */
function tryRun(file: string, args: readonly string[]): string | null {
  try {
    return execFileSync(file, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/**
 * Where the figures were measured: machine, GPU and driver, and the quantc
 * commit (from git, or QUANTC_COMMIT where the tree travels without .git).
 */
function machine(): Record<string, unknown> {
  const gpus = tryRun('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader']);
  return {
    date: new Date().toISOString(),
    quantc: QUANTC_VERSION,
    commit: process.env.QUANTC_COMMIT ?? tryRun('git', ['rev-parse', 'HEAD']),
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryBytes: totalmem(),
    gpus: gpus ? gpus.split('\n').map((l) => l.trim()) : [],
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    // glibc's allocator settings of the run (set by the bench itself on CUDA, as the launcher sets them).
    heap: heapSettings(process.env),
  };
}

/** The planning figures every run measures: CLI start, Kimi-K2 plans, matching, config expansion. */
async function baseFigures(print: (s: string) => void, keep: (section: string, row: unknown) => void): Promise<void> {
  const glmQr = ['check', 'recipes/glm-4.7-flash-nvfp4.qr'];
  const [check, nodeAlone, checkPlain] = wallTimes([[BIN, ...glmQr], [process.execPath, '-e', '0'], [process.execPath, PLAIN, ...glmQr]], 31);
  if (check!.exit !== 0) throw new Error(`bench: quantc ${glmQr.join(' ')} exited ${check!.exit}`);
  print(`check recipes/glm-4.7-flash-nvfp4.qr   CLI cold wall: median ${ms(check!.median)}, min ${ms(check!.min)} (budget 150 ms)`);
  print(`  node -e 0 in the same loop:          median ${ms(nodeAlone!.median)}, min ${ms(nodeAlone!.min)}`);
  print(`  without the startup snapshot:        median ${ms(checkPlain!.median)}, min ${ms(checkPlain!.min)}`);
  const checkYaml = cliWall(['check', 'recipes/glm-4.7-flash-nvfp4.yaml'], 11);
  print(`check recipes/glm-4.7-flash-nvfp4.yaml CLI cold wall: median ${ms(checkYaml.median)}, min ${ms(checkYaml.min)}`);
  keep('check', { qr: check, nodeAlone, withoutSnapshot: checkPlain, yaml: checkYaml });

  const kimi = await planCompile('recipes/kimi-k2-w4a16.qr', 6);
  print(
    `plan Kimi-K2 (${kimi.modules.toLocaleString('en-US')} modules after rewrites, ${kimi.quantize.toLocaleString('en-US')} to quantize) compile: cold ${ms(kimi.cold)}, warm median ${ms(kimi.median)} (budget 300 ms); text render ${ms(kimi.render)}`,
  );
  const kimiCli = cliWall(['plan', 'recipes/kimi-k2-w4a16.qr'], 5);
  print(`plan Kimi-K2 CLI wall (text): median ${ms(kimiCli.median)}, min ${ms(kimiCli.min)} (budget 1000 ms)`);
  const kimiJson = cliWall(['plan', 'recipes/kimi-k2-w4a16.qr', '--format', 'json'], 5);
  print(`plan Kimi-K2 CLI wall (json): median ${ms(kimiJson.median)}, min ${ms(kimiJson.min)}`);
  const glm = await planCompile('recipes/glm-4.7-flash-nvfp4.qr', 6);
  print(`plan GLM-4.7-Flash compile: cold ${ms(glm.cold)}, warm median ${ms(glm.median)}`);
  keep('plan', { kimiCompile: kimi, kimiCliText: kimiCli, kimiCliJson: kimiJson, glmCompile: glm });

  const match = benchMatch();
  print(
    `match ${match.patterns} patterns over ${match.modules.toLocaleString('en-US')} modules (Kimi-K2 unpacked): median ${ms(match.medianMs)} (budget 100 ms); lints ${ms(match.lintMedianMs)}`,
  );
  keep('match', match);
  for (const m of benchModelLoad()) {
    print(`expand ${m.name} config → ${m.modules.toLocaleString('en-US')} modules, ${m.moeBlocks} MoE blocks: first ${ms(m.firstMs)}, median ${ms(m.medianMs)} (budget 200 ms)`);
    keep('expand', m);
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  // quantc's passes run in this process: on CUDA it starts again with the allocator settings the launcher gives users.
  if (runsOnCuda(args) && heapUntuned(process.env)) {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args], { stdio: 'inherit', env: { ...process.env, ...CUDA_HEAP_ENV } });
    process.exit(r.status ?? 1);
  }
  const lines: string[] = [`quantc ${QUANTC_VERSION} benchmark (node ${process.version}, ${process.platform}/${process.arch})`, ''];
  const print = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  // `--record FILE`: every figure as data, next to the machine it was measured on.
  const recordFile = args.includes('--record') ? args[args.indexOf('--record') + 1] : undefined;
  const figures: Record<string, unknown[]> = {};
  const keep = (section: string, row: unknown): void => {
    (figures[section] ??= []).push(row);
  };
  // `--only`: just the sections asked for (--calibrate, --gptq, --apply), not the planning figures.
  if (!args.includes('--only')) await baseFigures(print, keep);

  if (args.includes('--calibrate')) {
    const { benchCalibrate, calibrateRatios, formatRatio, formatRow, parseCalibrateBenchArgs } = await import('./calibrate.js');
    const options = parseCalibrateBenchArgs(args);
    print(`calibration throughput, ${options.arch} ${options.model ?? options.modelSize} (quantc calibrate() vs PyTorch eager forward, same batches):`);
    const rows = await benchCalibrate({
      ...options,
      onRow: (r) => {
        print(formatRow(r));
        keep('calibrate', r);
      },
    });
    const ratios = calibrateRatios(rows);
    if (ratios.length > 0) print('quantc over PyTorch (passes: without what each does once; end to end: with PyTorch\'s model load and first pass, quantc\'s session creation):');
    for (const r of ratios) {
      print(formatRatio(r));
      keep('calibrateRatios', r);
    }
  }

  if (args.includes('--gptq')) {
    const { benchGptq, formatGptqRow, parseGptqBenchArgs } = await import('./gptq.js');
    print('GPTQ W4A16 per layer (quantc sequential pipeline vs PyTorch eager GPTQ, same weights and batches):');
    await benchGptq({
      ...parseGptqBenchArgs(args),
      onRow: (r) => {
        print(formatGptqRow(r));
        keep('gptq', r);
      },
    });
  }

  if (args.includes('--awq')) {
    const { benchAwq, formatAwqRow, parseAwqBenchArgs } = await import('./awq.js');
    print('AWQ W4A16_ASYM per layer (quantc sequential pipeline vs PyTorch eager AWQ search, same weights and batches):');
    await benchAwq({
      ...parseAwqBenchArgs(args),
      onRow: (r) => {
        print(formatAwqRow(r));
        keep('awq', r);
      },
    });
  }

  if (args.includes('--apply')) {
    const { benchApply, formatApplyBench, torchApplyLines } = await import('./apply.js');
    // `--device cpu|cuda|cuda:0,1,…`; `--torch` adds PyTorch's pass on the same machine (`--python`, default python3).
    // `--tensors N`: the synthetic checkpoint's [4096, 4096] bf16 tensors (32 MiB each; default 8).
    // `--device` may be given several times (`--device cuda --device cpu`): each runs in turn on the same checkpoint.
    const devices = args.flatMap((a, i) => (a === '--device' && args[i + 1] ? [args[i + 1]!] : []));
    if (devices.length === 0) devices.push('cpu');
    const device = devices.find((d) => d.startsWith('cuda')) ?? devices[0]!;
    const tensors = args.includes('--tensors') ? Number(args[args.indexOf('--tensors') + 1]) : 8;
    // `--repeat N`: each engine's fastest of N passes (for machines whose speed varies); `--schemes A,B`: a subset.
    const repeat = args.includes('--repeat') ? Number(args[args.indexOf('--repeat') + 1]) : 1;
    const schemes = args.includes('--schemes') ? args[args.indexOf('--schemes') + 1]!.split(',') : undefined;
    const { results, limits } = await benchApply({ devices, tensors, repeat, ...(schemes ? { schemes } : {}) });
    for (const line of formatApplyBench(results, limits)) print(line);
    for (const r of results) keep('apply', r);
    keep('apply-limits', { device: devices.join(' '), ...limits });
    if (args.includes('--torch')) {
      const torch = torchApplyLines(args.includes('--python') ? args[args.indexOf('--python') + 1]! : 'python3', device, tensors, schemes, repeat);
      for (const line of torch) print(line);
      keep('apply-torch', { device, lines: torch });
    }
  }
  if (recordFile) writeFileSync(recordFile, `${JSON.stringify({ formatVersion: 1, machine: machine(), figures, lines }, null, 2)}\n`);
}

await main();
