/**
 * Calibration throughput: tokens per second of quantc's calibration pass
 * (`calibrate()`: every decoder layer with the input observers of a static
 * activation recipe on every Linear, no quantized KV cache) against PyTorch eager forward passes (transformers,
 * `test/bench/torch_forward.py`) over the same token batches of the same
 * random checkpoint (llama, or an MoE architecture: `--arch`), on the same machine.
 *
 *   node dist/test/bench/calibrate.js [--model-size tiny|1b] [--arch llama|olmoe|granitemoe|phimoe|gpt_oss|llama4_text|qwen3_next|glm_moe_dsa|qwen3_moe|qwen3_moe_a3b] [--model DIR]
 *     [--tokens N] [--batch-size B] [--seq-len T] [--device cpu,cuda]
 *     [--torch-dtypes float32,bfloat16|none] [--python python3]
 *     [--graph-weight-bytes N] [--expert-group-bytes N] [--fold-constants 0|1] [--layer-outputs 0|1] [--compact-stacks 0|1]
 *     [--precision fp32,bf16] [--attention fused,ops] [--observe linear|symmetric|none] [--torch-observers without|with|both] [--repeat N] [--json FILE]
 *
 * `--precision` lists quantc's rows per device (default fp32): fp32 computes
 * in float32 (bf16 weights widened), like-for-like with the float32 PyTorch
 * row; bf16 computes in the checkpoint's dtype where transformers does
 * (MatMuls in bf16 on CUDA, rounding emulated on the CPU), like-for-like with
 * the bfloat16 row, and reports how far its statistics moved from the fp32
 * row's when both run. quantc's figure is the
 * whole `calibrate()` call: reading and widening each layer's weights,
 * building and loading its graph, running every batch, collecting the
 * statistics. PyTorch's excludes loading the model and one warm-up batch.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { calibrate, CUDA_RUN_TOKENS, joinBatches, type CalibrationResult } from '../../src/execute/calibrate/calibrate.js';
import { ForwardModel, type ForwardTimings, type TokenBatch } from '../../src/execute/forward/executor.js';
import { emptyRuntimeTimings, GraphRuntime, type Device } from '../../src/execute/runtime.js';
import { GraphBuilder, OnnxType } from '../../src/execute/onnx/graph-builder.js';
import type { Precision } from '../../src/execute/forward/precision.js';
import { xorshift32 } from './xorshift.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TORCH_SCRIPT = join(ROOT, 'test/bench/torch_forward.py');

/** Sizes torch_forward.py can make. */
export type ModelSize = 'tiny' | '1b';

/** Architectures torch_forward.py can make (MoE ones: 8 experts, top 2, qwen3_moe 64 experts, top 8; qwen3_moe_a3b Qwen3-30B-A3B's experts on 4 layers; every expert calibrated on every token, by both engines where transformers fuses the experts). */
export type BenchArch = 'llama' | 'olmoe' | 'granitemoe' | 'phimoe' | 'gpt_oss' | 'llama4_text' | 'qwen3_next' | 'glm_moe_dsa' | 'qwen3_moe' | 'qwen3_moe_a3b';

/** Options of {@link benchCalibrate}. */
export interface CalibrateBenchOptions {
  readonly modelSize?: ModelSize;
  readonly arch?: BenchArch;
  /** An existing model folder instead of a generated one. */
  readonly model?: string;
  readonly tokens?: number;
  readonly batchSize?: number;
  readonly seqLen?: number;
  readonly devices?: readonly Device[];
  /** PyTorch rows to run; none skips PyTorch. */
  readonly torchDtypes?: readonly ('float32' | 'bfloat16')[];
  /**
   * Whether PyTorch's rows also run llm-compressor's input observers
   * (`torch_forward.py --observers`: a `static_minmax` observer on every
   * Linear, as its calibration of a static-activation recipe hooks them):
   * `without` (the default) the forward pass alone, `with` with them,
   * `both` a row of each.
   */
  readonly torchObservers?: 'without' | 'with' | 'both';
  readonly python?: string;
  /** Overrides {@link ForwardModel.graphWeightBytes} (0: one layer per graph). */
  readonly graphWeightBytes?: number;
  /** Bounds the float32 bytes of experts one graph holds (`calibrate()`'s `expertGroupBytes`; default: the model's). */
  readonly expertGroupBytes?: number;
  /** Overrides {@link ForwardModel.foldConstants}. */
  readonly foldConstants?: boolean;
  /** Overrides {@link ForwardModel.layerOutputs}. */
  readonly layerOutputs?: boolean;
  /** Overrides {@link ForwardModel.compactStacks} (bf16/fp16 states between graphs). */
  readonly compactStacks?: boolean;
  /** quantc rows per device, in this order (default fp32 only). */
  readonly precisions?: readonly Precision[];
  /**
   * For each low-precision row on CUDA, the attention kernels to run it with,
   * in this order (default: as apply runs, `QUANTC_FUSED_ATTENTION` deciding): `fused` is onnxruntime's
   * GroupQueryAttention, `ops` the MatMul/Softmax graph with the scores
   * materialised. Each later variant reports its statistics' distance from
   * the first's.
   */
  readonly attention?: readonly ('fused' | 'ops')[];
  /**
   * What quantc's rows observe: `linear` (the default) the min and max of
   * the inputs of every Linear, as an asymmetric static activation recipe
   * needs; `symmetric` the same inputs as a symmetric one (FP8, NVFP4's
   * global scales) reads them, one `|x|` maximum each; `none` nothing: the
   * forward pass alone (returning the last layer's states), to tell the
   * observers' share of the time.
   */
  readonly observe?: 'linear' | 'symmetric' | 'none';
  /**
   * Sequences of `seqLen` one quantc graph run holds at most (`CalibrateOptions.runTokens`);
   * default: as `apply` joins them (on CUDA up to `CUDA_RUN_TOKENS`, on the CPU one batch a run).
   */
  readonly runRows?: number;
  /**
   * Whether joined runs leave the last batch alone (`CalibrateOptions.lastBatchAlone`). Default: as
   * `apply` runs the recipe the rows stand for: alone for `linear` (an asymmetric static scheme's
   * default observer, `memoryless_minmax`, reads the last batch) and `none` (the same runs without
   * observers), joined for `symmetric` (the FP8 and NVFP4 presets' `static_minmax` reads only running
   * statistics).
   */
  readonly lastBatchAlone?: boolean;
  /**
   * Runs of each quantc row, one after the other in the process (default 1):
   * a fresh machine's first pass pays one-time costs (the card's kernels
   * loaded, caches filled) that a user pays once, so a record of 2 gives the
   * first and the steady figure.
   */
  readonly repeat?: number;
  /** Each row as it is measured. */
  readonly onRow?: (row: CalibrateBenchRow) => void;
}

/** One measured row. */
export interface CalibrateBenchRow {
  readonly engine: 'quantc' | 'pytorch';
  readonly device: Device;
  readonly dtype: 'float32' | 'bfloat16';
  readonly tokens: number;
  readonly seconds: number;
  readonly tokensPerSecond: number;
  /** quantc only: where the time went (ms). */
  readonly timings?: ForwardTimings;
  /** quantc only: layers per graph, as run. */
  readonly layersPerGraph?: number;
  /** quantc bf16 on CUDA: the attention kernels of the row (see {@link CalibrateBenchOptions.attention}). */
  readonly attention?: 'fused' | 'ops';
  /** quantc bf16 on CUDA: whether RoPE ran inside the fused attention kernel (`QUANTC_FUSED_ROPE=1`) and the decoder RMSNorms as one kernel (unless `QUANTC_FUSED_NORMS=0`). */
  readonly fusedRotary?: boolean;
  readonly fusedNorms?: boolean;
  /** quantc with `--observe none`: the forward pass without observers; with `symmetric`: one |x| maximum per input. PyTorch with `linear`: with llm-compressor's observers ({@link CalibrateBenchOptions.torchObservers}). */
  readonly observe?: 'none' | 'linear' | 'symmetric';
  /** quantc: sequences per graph run, where more than one batch's. */
  readonly runRows?: number;
  /** quantc with joined runs: whether the last batch ran alone. */
  readonly lastBatchAlone?: boolean;
  /** quantc with `repeat` > 1: which run of its variant the row is (1 = the first). */
  readonly run?: number;
  /** quantc only: largest relative difference of an observed min or max from the first run of the same precision (an earlier device, or attention variant). */
  readonly statsDiff?: number;
  /** quantc bf16 only: largest relative difference of an observed min or max from the fp32 run on the same device. */
  readonly precisionDiff?: number;
  readonly note?: string;
  /** PyTorch only: loading the model onto the device (`from_pretrained`, after the device's context is made), seconds. */
  readonly loadSeconds?: number;
  /** PyTorch only: its first pass (batch 0, before the timed pass), seconds. */
  readonly firstPassSeconds?: number;
  /** PyTorch only: how many batches the timed pass ran. */
  readonly batches?: number;
}

/**
 * quantc's speed over PyTorch's for one pair of rows, two ways. `passes`:
 * quantc's calibrate() less what it does once (graph building, session
 * creation, release) against PyTorch's timed pass (its first pass apart);
 * `endToEnd`: quantc's whole calibrate() against PyTorch's model load, first
 * pass and the other batches' share of its timed pass.
 */
export interface CalibrateRatio {
  readonly quantc: string;
  readonly pytorch: string;
  readonly passes: number;
  readonly endToEnd: number;
  readonly quantcPassSeconds: number;
  readonly pytorchEndToEndSeconds: number;
}

/** The ratios of every quantc row to every PyTorch row of the same device and dtype (PyTorch rows timed with their load only). */
export function calibrateRatios(rows: readonly CalibrateBenchRow[]): CalibrateRatio[] {
  const out: CalibrateRatio[] = [];
  const observing = (r: CalibrateBenchRow): string => (r.observe === undefined ? '' : r.engine === 'pytorch' ? " with llm-compressor's observers" : ` observe ${r.observe}`);
  const label = (r: CalibrateBenchRow): string => `${r.engine} ${r.dtype}${r.run === undefined ? '' : ` run ${r.run}`}${observing(r)}`;
  for (const q of rows.filter((r) => r.engine === 'quantc' && r.timings)) {
    const t = q.timings!;
    const quantcPassSeconds = q.seconds - (t.create + t.build + t.release) / 1000;
    for (const p of rows.filter((r) => r.engine === 'pytorch' && r.device === q.device && r.dtype === q.dtype && r.loadSeconds !== undefined)) {
      const n = p.batches ?? 1;
      // The first batch ran twice (first pass, then timed): counted once, at its first-pass time.
      const pytorchEndToEndSeconds = p.loadSeconds! + p.firstPassSeconds! + (p.seconds * (n - 1)) / n;
      out.push({ quantc: label(q), pytorch: label(p), passes: p.seconds / quantcPassSeconds, endToEnd: pytorchEndToEndSeconds / q.seconds, quantcPassSeconds, pytorchEndToEndSeconds });
    }
  }
  return out;
}

/** One line for `ratio`. */
export function formatRatio(r: CalibrateRatio): string {
  return `${r.quantc} ÷ ${r.pytorch}: passes ${r.passes.toFixed(2)}× (quantc ${r.quantcPassSeconds.toFixed(2)} s), end to end ${r.endToEnd.toFixed(2)}× (PyTorch ${r.pytorchEndToEndSeconds.toFixed(2)} s)`;
}

/** Largest relative difference between two calibrations' min/max statistics. */
function statsDiff(a: CalibrationResult, b: CalibrationResult): number {
  let worst = 0;
  for (const [module, s] of a.inputs) {
    const t = b.inputs.get(module);
    if (!t) return Infinity;
    for (const [x, y] of [
      [s.min, t.min],
      [s.max, t.max],
    ] as const) {
      const scale = Math.max(Math.abs(x), Math.abs(y));
      if (scale > 0) worst = Math.max(worst, Math.abs(x - y) / scale);
    }
  }
  return worst;
}

function defaults(size: ModelSize): { tokens: number; batchSize: number; seqLen: number } {
  return size === 'tiny' ? { tokens: 32768, batchSize: 4, seqLen: 512 } : { tokens: 16384, batchSize: 4, seqLen: 512 };
}

/** Deterministic token ids (xorshift32), `[batches][B][T]`. */
export function tokenBatches(count: number, batchSize: number, seqLen: number, vocab: number, seed = 1): TokenBatch[] {
  const random = xorshift32(seed);
  const next = (): number => random() % vocab;
  return Array.from({ length: count }, () => Array.from({ length: batchSize }, () => Array.from({ length: seqLen }, next)));
}

function python(py: string, args: readonly string[]): string {
  const r = spawnSync(py, [TORCH_SCRIPT, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${py} torch_forward.py ${args[0]} failed (${r.status}): ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
  return r.stdout.trim().split('\n').at(-1)!;
}

/** Creates the device's context and loads its libraries once, outside the timed pass. */
async function warmUp(device: Device): Promise<void> {
  const g = new GraphBuilder();
  const x = g.input('x', OnnxType.float, [2, 2]);
  g.output(g.op('MatMul', [x, x]), 'y', OnnxType.float, [2, 2]);
  const bytes = g.build('warm_up');
  const runtime = new GraphRuntime(device);
  try {
    await runtime.run('warm_up', () => bytes, { x: { type: 'float32', data: new Float32Array(4), dims: [2, 2] } });
  } finally {
    await runtime.dispose();
  }
}

/** Runs the benchmark and returns its rows (quantc then PyTorch per device). */
export async function benchCalibrate(options: CalibrateBenchOptions = {}): Promise<CalibrateBenchRow[]> {
  const size = options.modelSize ?? 'tiny';
  const d = defaults(size);
  const batchSize = options.batchSize ?? d.batchSize;
  const seqLen = options.seqLen ?? d.seqLen;
  const count = Math.max(1, Math.round((options.tokens ?? d.tokens) / (batchSize * seqLen)));
  const py = options.python ?? 'python3';
  let dir = options.model;
  if (!dir) {
    const arch = options.arch ?? 'llama';
    dir = join(tmpdir(), `quantc-bench-${arch}-${size}`);
    if (!existsSync(join(dir, 'config.json'))) python(py, ['make', dir, '--size', size, '--arch', arch]);
  }
  const rows: CalibrateBenchRow[] = [];
  const push = (row: CalibrateBenchRow): void => {
    rows.push(row);
    options.onRow?.(row);
  };
  const probe = await ForwardModel.open(dir);
  const batches = tokenBatches(count, batchSize, seqLen, probe.config.vocabSize);
  const tokens = count * batchSize * seqLen;
  const tokensFile = join(tmpdir(), `quantc-bench-tokens-${count}x${batchSize}x${seqLen}.json`);
  await mkdir(tmpdir(), { recursive: true });
  await writeFile(tokensFile, JSON.stringify(batches));
  const first = new Map<Precision, CalibrationResult>();
  for (const device of options.devices ?? ['cpu']) {
    await warmUp(device);
    let fp32: CalibrationResult | undefined;
    const variants = (options.precisions ?? ['fp32']).flatMap((precision): { precision: Precision; attention?: 'fused' | 'ops' }[] =>
      precision === 'bf16' && device === 'cuda' && options.attention ? options.attention.map((attention) => ({ precision, attention })) : [{ precision, attention: undefined }],
    );
    const repeat = Math.max(1, Math.floor(options.repeat ?? 1));
    for (const { precision, attention, run } of variants.flatMap((v) => Array.from({ length: repeat }, (_, i) => ({ ...v, run: i + 1 })))) {
      const model = await ForwardModel.open(dir, device);
      if (options.graphWeightBytes !== undefined) model.graphWeightBytes = options.graphWeightBytes;
      if (options.foldConstants !== undefined) model.foldConstants = options.foldConstants;
      if (options.layerOutputs !== undefined) model.layerOutputs = options.layerOutputs;
      if (options.compactStacks !== undefined) model.compactStacks = options.compactStacks;
      let ran = model.usePrecision(precision);
      if (attention && ran.low) model.precision = ran = { ...ran, low: { ...ran.low, fusedAttention: attention === 'fused' } };
      const timings: ForwardTimings = { ...emptyRuntimeTimings(), build: 0 };
      model.timings = timings;
      const t0 = performance.now();
      // The observers of a static activation recipe on every Linear, without a quantized KV cache; or the forward pass alone (the last states returned).
      const observes = (module: string): boolean => !module.endsWith('_states');
      let result: CalibrationResult | undefined;
      const runTokens = options.runRows !== undefined ? options.runRows * seqLen : device === 'cuda' ? CUDA_RUN_TOKENS : undefined;
      const lastBatchAlone = options.lastBatchAlone ?? options.observe !== 'symmetric';
      const runs = runTokens === undefined ? batches : joinBatches(batches, runTokens, lastBatchAlone);
      const runRows = Math.max(...runs.map((b) => b.length));
      if (options.observe === 'none') await model.layers(await model.embed(runs), { expertGroupBytes: options.expertGroupBytes });
      else result = await calibrate(model, batches, true, options.expertGroupBytes, { observes, runTokens, lastBatchAlone, ...(options.observe === 'symmetric' ? { absmax: () => true } : {}) });
      const seconds = (performance.now() - t0) / 1000;
      const ranges = model.layerRanges(model.expertGroupBound(options.expertGroupBytes));
      const before = first.get(precision);
      push({
        engine: 'quantc',
        device,
        dtype: ran.low ? 'bfloat16' : 'float32',
        tokens,
        seconds,
        tokensPerSecond: tokens / seconds,
        timings,
        layersPerGraph: Math.max(...ranges.map(([a, b]) => b - a)),
        ...(repeat > 1 ? { run } : {}),
        ...(runRows > 1 ? { runRows, lastBatchAlone } : {}),
        ...(options.observe === 'none' || options.observe === 'symmetric' ? { observe: options.observe } : {}),
        ...(ran.low?.native ? { attention: ran.low.fusedAttention ? ('fused' as const) : ('ops' as const), fusedRotary: ran.low.fusedRotary === true, fusedNorms: ran.low.fusedNorms === true } : {}),
        statsDiff: before && result ? statsDiff(before, result) : undefined,
        precisionDiff: ran.low && fp32 && result ? statsDiff(fp32, result) : undefined,
        ...(ran.note ? { note: ran.note } : {}),
      });
      if (!before && result) first.set(precision, result);
      if (!ran.low && result) fp32 = result;
    }
    const observing = { without: [false], with: [true], both: [false, true] }[options.torchObservers ?? 'without'];
    for (const dtype of options.torchDtypes ?? ['float32', 'bfloat16']) {
      for (const observers of observing) {
        const r = JSON.parse(python(py, ['run', dir, tokensFile, '--device', device, '--dtype', dtype, ...(observers ? ['--observers'] : [])])) as {
          seconds: number;
          tokens: number;
          tokens_per_s: number;
          torch: string;
          device_name: string;
          experts: 'all' | 'routed';
          experts_modules: number;
          observed_modules?: number;
          load_seconds?: number;
          first_pass_seconds?: number;
        };
        // Fused experts run as llm-compressor calibrates them: every expert on every token, as quantc's pass does.
        const experts = r.experts_modules > 0 ? `, every expert on every token (${r.experts_modules} experts modules)` : '';
        const observed = observers ? `, llm-compressor's input observers on ${r.observed_modules} modules` : '';
        push({ engine: 'pytorch', device, dtype, tokens: r.tokens, seconds: r.seconds, tokensPerSecond: r.tokens_per_s, ...(observers ? { observe: 'linear' as const } : {}), note: `torch ${r.torch}${experts}${observed}`, ...(r.load_seconds === undefined ? {} : { loadSeconds: r.load_seconds, firstPassSeconds: r.first_pass_seconds, batches: count }) });
      }
    }
  }
  return rows;
}

/** One table line for `row`. */
export function formatRow(row: CalibrateBenchRow): string {
  const t = row.timings;
  const diff =
    (row.statsDiff === undefined ? '' : `, min/max vs first run ${row.statsDiff.toExponential(1)}`) +
    (row.precisionDiff === undefined ? '' : `, min/max vs fp32 ${row.precisionDiff.toExponential(1)}`);
  const split = t
    ? `  (${row.observe === 'none' ? 'no observers, ' : row.observe === 'symmetric' ? 'symmetric observers (|x| maxima), ' : ''}${row.run === undefined ? '' : `run ${row.run}, `}${row.runRows === undefined ? '' : `${row.runRows} sequences/run${row.lastBatchAlone ? ', the last batch alone' : ''}, `}${row.layersPerGraph} layer(s)/graph: build ${(t.build / 1000).toFixed(1)} s, session create ${(t.create / 1000).toFixed(1)} s × ${t.sessions}, run ${(t.run / 1000).toFixed(1)} s × ${t.runs} (the first with their shapes ${(t.firstRuns / 1000).toFixed(2)} s × ${t.firstRunCount}), release ${(t.release / 1000).toFixed(1)} s${diff})`
    : row.note
      ? `  (${row.note}${row.loadSeconds === undefined ? '' : `; model load ${row.loadSeconds.toFixed(2)} s, first pass ${row.firstPassSeconds!.toFixed(2)} s`})`
      : '';
  return `${row.engine.padEnd(8)} ${row.device.padEnd(5)} ${(row.dtype + (row.attention === 'ops' ? '/ops' : '')).padEnd(12)} ${String(row.tokens).padStart(7)} tokens ${row.seconds.toFixed(2).padStart(8)} s ${row.tokensPerSecond.toFixed(0).padStart(9)} tokens/s${split}`;
}

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Options from command-line arguments (see the module comment). */
export function parseCalibrateBenchArgs(args: readonly string[]): CalibrateBenchOptions {
  const num = (name: string): number | undefined => (flag(args, name) === undefined ? undefined : Number(flag(args, name)));
  const list = <T extends string>(name: string): T[] | undefined => flag(args, name)?.split(',').filter(Boolean) as T[] | undefined;
  return {
    modelSize: (flag(args, '--model-size') as ModelSize | undefined) ?? 'tiny',
    arch: (flag(args, '--arch') as BenchArch | undefined) ?? 'llama',
    model: flag(args, '--model'),
    tokens: num('--tokens'),
    batchSize: num('--batch-size'),
    seqLen: num('--seq-len'),
    devices: list<Device>('--device'),
    torchDtypes: flag(args, '--torch-dtypes') === 'none' ? [] : list<'float32' | 'bfloat16'>('--torch-dtypes'),
    torchObservers: flag(args, '--torch-observers') as 'without' | 'with' | 'both' | undefined,
    python: flag(args, '--python'),
    graphWeightBytes: num('--graph-weight-bytes'),
    expertGroupBytes: num('--expert-group-bytes'),
    foldConstants: flag(args, '--fold-constants') === undefined ? undefined : flag(args, '--fold-constants') === '1',
    layerOutputs: flag(args, '--layer-outputs') === undefined ? undefined : flag(args, '--layer-outputs') === '1',
    compactStacks: flag(args, '--compact-stacks') === undefined ? undefined : flag(args, '--compact-stacks') === '1',
    precisions: list<Precision>('--precision'),
    attention: list<'fused' | 'ops'>('--attention'),
    repeat: num('--repeat'),
    observe: flag(args, '--observe') as 'linear' | 'symmetric' | 'none' | undefined,
    runRows: num('--run-rows'),
    lastBatchAlone: flag(args, '--last-batch-alone') === undefined ? undefined : flag(args, '--last-batch-alone') === '1',
  };
}

if (process.argv[1]?.endsWith('calibrate.js')) {
  const args = process.argv.slice(2);
  const options = parseCalibrateBenchArgs(args);
  console.log(`calibration throughput, ${options.arch} ${options.model ?? options.modelSize} (node ${process.version}, ${cpus().length} CPUs: ${cpus()[0]?.model ?? '?'})`);
  const rows = await benchCalibrate({ ...options, onRow: (r) => console.log(formatRow(r)) });
  const out = flag(args, '--json');
  if (out) await writeFile(out, JSON.stringify({ options: { ...options, onRow: undefined }, rows }, null, 2));
}
