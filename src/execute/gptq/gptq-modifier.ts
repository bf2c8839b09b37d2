/**
 * GPTQModifier on the sequential pipeline: pass A accumulates one Hessian
 * per distinct input of the layer's GPTQ targets (and the min/max and expert
 * coverage every calibrated job needs); between the passes every target's
 * scales are observed on its original weight first, then each weight is
 * solved; pass B propagates the quantized weights.
 */
import { FUSED_LAYER_NAMES } from '../../match/fused-groups.js';
import { bf16Bytes, f16Bytes, toFloat32 } from '../dtypes.js';
import type { DenseMatrix } from '../forward/dequantize.js';
import { parseObserverOutput, type Observation } from '../forward/observe.js';
import type { WeightReader } from '../forward/weights.js';
import { CoverageCollector } from '../calibrate/coverage.js';
import { expertOf } from '../calibrate/expert-coverage.js';
import { LastBatchMinMax, StaticMinMax } from '../calibrate/observers.js';
import type { WeightChanges } from '../pipeline/overlay-weights.js';
import type { LayerModifier } from '../pipeline/sequential.js';
import type { QuantizationArgs } from '../../ir/types.js';
import { planWeightKernel, UnsupportedSchemeError, type KernelKind, type WeightDtype } from '../rtn/weight-kernel.js';
import type { RawTensor } from '../runtime.js';
import type { ApplyJob, SolvedWeight } from '../types.js';
import { readWeight, resolveWeight } from '../weight-source.js';
import { HessianStore } from './hessians.js';
import { solveByRowBlocks } from './row-blocks.js';
import type { GemmEngine } from './gemm.js';
import { GraphSolver, stackKey } from './graph-solve.js';
import { identityPrepared, orderingOf, prepareHessian, solveGptq, type FactorEngine, type GptqProblem, type GptqSettings, type GptqSolution, type PreparedHessian } from './solve.js';
import { fusedNvfp4GlobalScale, groupStats, scaleLayout, type GroupStats } from './weight-qparams.js';
import { absmaxModules, observedModules } from '../calibrate/calibrate-job.js';

/** What GPTQ did to one module. */
export interface GptqModuleReport {
  readonly module: string;
  /** llm-compressor's logged loss. */
  readonly loss: number;
  /** Samples the Hessian was divided by. */
  readonly samples: number;
  /** `gptq`, `rtn-fallback` (Cholesky failed) or `rtn-coverage` (expert under-covered, rounded to nearest by the coverage policy). */
  readonly method: 'gptq' | 'rtn-fallback' | 'rtn-coverage';
}

/** A module GPTQ could not quantize; the message is user-facing. */
export class GptqInputError extends Error {}

const DTYPES: Readonly<Record<WeightReader['dtype'], WeightDtype>> = { bfloat16: 'BF16', float16: 'F16', float32: 'F32' };

function dtypeBytes(values: Float32Array, dtype: WeightDtype): Uint8Array {
  if (dtype === 'BF16') return bf16Bytes(values);
  if (dtype === 'F16') return f16Bytes(values);
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

function layerOf(module: string): number | null {
  const m = /(?:^|\.)layers\.(\d+)\./.exec(module);
  return m ? Number(m[1]) : null;
}

/** Whether `module` is the output head (`lm_head`, `language_model.lm_head`). */
export function isHeadModule(module: string): boolean {
  return /(?:^|\.)lm_head$/.test(module);
}

/** Settings of a GPTQ run beyond the job. */
export interface GptqRunOptions extends GptqSettings {
  /** Where the JavaScript solve's dense products run. */
  readonly gemm: GemmEngine;
  /** When set, the whole solve runs on these graphs instead (factorization and column loop). */
  readonly graph?: GraphSolver;
  /** Decoder layers of the model (`lm_head` is solved with the last). */
  readonly layers: number;
  /** Experts (`layer/expert`) rounded to nearest instead (coverage policy); decided per layer after pass A. */
  readonly rtnExperts: (layer: number, coverage: CoverageCollector) => ReadonlySet<string>;
}

/** A target's original weight and what is observed on it before any weight of the layer changes. */
interface LoadedWeight {
  readonly module: string;
  readonly w: { readonly data: Float32Array; readonly rows: number; readonly cols: number; readonly dtype: WeightDtype };
  readonly args: QuantizationArgs;
  readonly kind: KernelKind;
  readonly stats: GroupStats;
}

/** The GPTQ {@link LayerModifier} for a job. */
export class GptqModifier implements LayerModifier {
  readonly observe: Observation;
  readonly stats = new StaticMinMax();
  readonly lastBatch = new LastBatchMinMax();
  readonly coverage = new CoverageCollector();
  readonly solved = new Map<string, SolvedWeight>();
  readonly reports: GptqModuleReport[] = [];
  /** Distinct Hessians accumulated, summed over layers. */
  hessians = 0;
  private store = new HessianStore();
  private readonly byLayer = new Map<number, string[]>();
  private readonly groupOf: ReadonlyMap<string, number>;
  /** The output head GPTQ targets, solved with the last layer (see `LayerModifier.head`). */
  readonly head: string | undefined;

  constructor(
    private readonly job: ApplyJob,
    private readonly weights: WeightReader,
    modules: readonly string[],
    calibrateAllExperts: boolean,
    private readonly options: GptqRunOptions,
  ) {
    // Hessians of the modules solved here, ranges of the inputs the job calibrates statically: nothing else is reduced.
    const ranges = observedModules(job);
    const solved = new Set(modules);
    this.observe = { experts: calibrateAllExperts ? 'all' : 'routed', hessians: true, observes: (m) => solved.has(m) || ranges(m), minmax: ranges, absmax: absmaxModules(job) };
    this.groupOf = new Map(job.modules.map((m) => [m.name, m.group]));
    this.head = modules.find(isHeadModule);
    for (const m of modules) {
      if (m === this.head) continue;
      const layer = layerOf(m);
      if (layer === null) throw new GptqInputError(`${m}: GPTQ runs on the decoder layers' modules; this module is outside them (add it to the recipe's ignore list or quantize it with a QuantizationModifier)`);
      if (!this.byLayer.has(layer)) this.byLayer.set(layer, []);
      this.byLayer.get(layer)!.push(m);
    }
    // lm_head is solved with the last layer: llm-compressor's last subgraph holds both.
    if (this.head !== undefined) this.byLayer.set(options.layers - 1, [...(this.byLayer.get(options.layers - 1) ?? []), this.head]);
  }

  /** Every layer with a module to solve changes (see `LayerModifier.changesLayer`). */
  changesLayer(layer: number): boolean {
    return (this.byLayer.get(layer)?.length ?? 0) > 0;
  }

  collect(layer: number, run: number, rows: number, calls: number, outputs: Readonly<Record<string, RawTensor>>): void {
    const rest: Record<string, RawTensor> = {};
    for (const [name, t] of Object.entries(outputs)) {
      if (name.startsWith('hess') || name.startsWith('ehess')) rest[name] = t;
      else if (name === 'routed') this.coverage.add(layer, { routed: t });
      else
        for (const v of parseObserverOutput(name, t.data as Float32Array)) {
          this.stats.add(v);
          this.lastBatch.add(v, run);
        }
    }
    this.store.add(rest, rows, calls);
  }

  /** The original weight of `module` as float32 values of its stored dtype. */
  private async original(module: string): Promise<{ data: Float32Array; rows: number; cols: number; dtype: WeightDtype }> {
    // A weight an earlier transform (SmoothQuant) changed is GPTQ's original.
    const replaced = this.weights.replacement(module);
    if (replaced) return { ...replaced, dtype: DTYPES[this.weights.dtype] };
    let src = resolveWeight(this.weights.index, module, this.job.fusedExperts);
    if (!src && isHeadModule(module)) {
      // A tied lm_head starts from the input embedding's weight and is untied when written (as apply does).
      const entry = this.weights.index.tensors.get(`${this.weights.names.model}.embed_tokens.weight`);
      if (entry && entry.shape.length === 2) src = { entry, dtype: entry.dtype, shape: [entry.shape[0]!, entry.shape[1]!] };
    }
    if (src && (src.dtype === 'BF16' || src.dtype === 'F16' || src.dtype === 'F32')) return { data: toFloat32(await readWeight(src), src.dtype), rows: src.shape[0], cols: src.shape[1], dtype: src.dtype };
    const m = await this.weights.linear(module);
    return { ...m, dtype: DTYPES[this.weights.dtype] };
  }

  async finishLayer(layer: number): Promise<WeightChanges> {
    const modules = this.byLayer.get(layer) ?? [];
    const changed = new Map<string, DenseMatrix>();
    const rtn = this.options.rtnExperts(layer, this.coverage);
    // Every weight is observed before any is modified (fused NVFP4 siblings share a global scale).
    const loaded: LoadedWeight[] = [];
    for (const module of modules) {
      const w = await this.original(module);
      const group = this.job.groups[this.groupOf.get(module)!]!;
      const args = group.scheme.weights!;
      let kernel: ReturnType<typeof planWeightKernel>;
      try {
        kernel = planWeightKernel({ ...group.scheme, weights: { ...args, actorder: null } }, [w.rows, w.cols], w.dtype);
      } catch (e) {
        if (e instanceof UnsupportedSchemeError) throw new GptqInputError(`${module}: ${e.message}`);
        throw e;
      }
      const stats = groupStats(w.data, w.rows, w.cols, scaleLayout(args, w.rows, w.cols));
      if (stats.finite === false) throw new GptqInputError(`${module}: the weight holds non-finite values (NaN or infinity); its scales would be written non-finite`);
      loaded.push({ module, w, args, kind: kernel.kind, stats });
    }
    // A non-finite weight is named first: it is what makes the activations after it non-finite.
    for (const m of modules) {
      const sum = this.store.sumOf(m);
      if (sum && !sum.finite) throw new GptqInputError(`${m}: its calibration inputs overflowed (the Hessian holds NaN or infinity); the layers before it produce non-finite activations on this data`);
    }
    const globals = new Map<string, number>();
    for (const l of loaded) {
      if (l.kind !== 'nvfp4' || globals.has(l.module)) continue;
      const dot = l.module.lastIndexOf('.');
      const parent = l.module.slice(0, dot);
      const set = FUSED_LAYER_NAMES.find((s) => s.includes(l.module.slice(dot + 1))) ?? [l.module.slice(dot + 1)];
      const members = loaded.filter((o) => o.kind === 'nvfp4' && set.some((s) => o.module === `${parent}.${s}`));
      const g = fusedNvfp4GlobalScale(members.map((o): GroupStats => o.stats), l.w.dtype);
      for (const o of members) globals.set(o.module, g);
    }
    // Modules reading one input with one ordering share the Hessian's factorization: factor once, drop after its last user.
    const keyOf = (l: LoadedWeight): string | undefined => {
      const expert = expertOf(l.module);
      if (expert !== null && rtn.has(expert)) return undefined;
      const key = this.store.keyOf(l.module);
      if (key === undefined) throw new GptqInputError(`${l.module}: the calibration pass never reached this module, so it has no Hessian (llm-compressor would leave it unquantized without a word)`);
      return `${key}|${orderingOf(l.args)}`;
    };
    // Every module's problem first: a missing or mismatched Hessian stops the layer before any solve.
    const entries = loaded.map((l) => {
      const k = l.w.cols;
      const key = keyOf(l);
      const sum = key === undefined ? undefined : this.store.sumOf(l.module);
      if (key !== undefined && !sum) throw new GptqInputError(`${l.module}: the calibration pass never reached this module, so it has no Hessian (llm-compressor would leave it unquantized without a word)`);
      if (sum && sum.k !== k) throw new GptqInputError(`${l.module}: its input has ${sum.k} features but its weight ${k} columns`);
      const problem: GptqProblem = { weight: l.w.data, rows: l.w.rows, cols: k, hessian: key === undefined ? identity(k) : NO_HESSIAN, kind: l.kind, args: l.args, dtype: l.w.dtype, stats: l.stats, globalScale: globals.get(l.module) ?? null };
      return { l, key, sum, problem };
    });
    const solutions = this.options.graph ? await this.solveOnGraphs(entries, this.options.graph) : await this.solveInJs(entries);
    entries.forEach(({ l, key, sum }, i) => {
      const solution = solutions[i]!;
      changed.set(l.module, { data: solution.weight, rows: l.w.rows, cols: l.w.cols });
      this.solved.set(l.module, { bytes: dtypeBytes(solution.weight, l.w.dtype), dtype: l.w.dtype, gIdx: solution.gIdx, qparams: solution.gIdx ? solution.qparams : null });
      this.reports.push({ module: l.module, loss: solution.loss, samples: sum?.n ?? 0, method: key === undefined ? 'rtn-coverage' : solution.fellBack ? 'rtn-fallback' : 'gptq' });
    });
    this.hessians += this.store.count;
    this.store = new HessianStore();
    return { linears: changed, vectors: new Map() };
  }

  /** Factors the Hessian of `module` (the normalized sum) for `args`' ordering. */
  private async prepare(module: string, args: QuantizationArgs, k: number, engine: GemmEngine | FactorEngine): Promise<PreparedHessian> {
    const h = this.store.hessian(module)!;
    return prepareHessian(h.sum, k, orderingOf(args), this.options, engine, h.scale);
  }

  /** One module at a time in JavaScript, GEMMs on the runtime; a shared Hessian is factored once and dropped after its last user. */
  private async solveInJs(entries: readonly SolveEntry[]): Promise<GptqSolution[]> {
    const users = new Map<string, number>();
    for (const e of entries) if (e.key !== undefined) users.set(e.key, (users.get(e.key) ?? 0) + 1);
    const prepared = new Map<string, PreparedHessian>();
    const out: GptqSolution[] = [];
    for (const { l, key, problem } of entries) {
      if (key === undefined) {
        // Rounded to nearest by the coverage policy: GPTQ with H = I and no dampening is exactly that.
        out.push(await solveGptq(problem, { ...this.options, dampeningFrac: 0 }, this.options.gemm));
        continue;
      }
      let prep = prepared.get(key);
      if (!prep) {
        prep = await this.prepare(l.module, l.args, problem.cols, this.options.gemm);
        prepared.set(key, prep);
      }
      out.push(await solveByRowBlocks(problem, this.options, this.options.gemm, prep));
      const left = users.get(key)! - 1;
      users.set(key, left);
      if (left === 0) prepared.delete(key);
    }
    return out;
  }

  /**
   * On graphs: modules sharing a factored Hessian and a quantization kind
   * are one stacked problem (rows are independent given H and the scales),
   * solved in one graph run; those the coverage policy rounds to nearest
   * share the identity. Hessians of one width are factored together, and
   * stacks of one shape under different Hessians (the experts' `down_proj`)
   * solved together: a batch axis in the same graph runs.
   */
  private async solveOnGraphs(entries: readonly SolveEntry[], graph: GraphSolver): Promise<GptqSolution[]> {
    const stacks = new Map<string, number[]>();
    entries.forEach((e, i) => {
      const id = `${e.key ?? `identity|${e.problem.cols}|${orderingOf(e.l.args)}`}|${stackKey(e.problem)}`;
      if (!stacks.has(id)) stacks.set(id, []);
      stacks.get(id)!.push(i);
    });
    // Stacks of one shape and scheme, each under its own Hessian, run as one batch.
    // With padRows (CUDA) stacks of other row counts join too, padded with zero rows: the loop's steps,
    // not its arithmetic, cost there. Padding stays within PAD_RATIO of a stack's own rows.
    const rowsOf = (members: readonly number[]): number => members.reduce((n, i) => n + entries[i]!.problem.rows, 0);
    const grouped = new Map<string, number[][]>();
    for (const [id, members] of stacks) {
      const e = entries[members[0]!]!;
      const shape = e.key === undefined ? id : `${graph.padRows ? '' : rowsOf(members)}|${orderingOf(e.l.args)}|${stackKey(e.problem)}`;
      if (!grouped.has(shape)) grouped.set(shape, []);
      grouped.get(shape)!.push(members);
    }
    const batches: number[][][] = [];
    for (const list of grouped.values()) {
      const sorted = graph.padRows ? [...list].sort((a, b) => rowsOf(b) - rowsOf(a)) : list;
      let cur: number[][] = [];
      for (const members of sorted) {
        if (cur.length > 0 && rowsOf(members) * PAD_RATIO < rowsOf(cur[0]!)) {
          batches.push(cur);
          cur = [];
        }
        cur.push(members);
      }
      batches.push(cur);
    }
    const users = new Map<string, number>();
    for (const members of stacks.values()) {
      const key = entries[members[0]!]!.key;
      if (key !== undefined) users.set(key, (users.get(key) ?? 0) + 1);
    }
    // Every Hessian of the layer first, factored together in runs within BATCH_BYTES: those of one width
    // (q/k/v's, o_proj's and gate/up's are all `hidden` wide), or with padRows (CUDA) all of them, the
    // narrower padded to the widest.
    const prepared = new Map<string, PreparedHessian>();
    const seen = new Set<string>();
    const factor: SolveEntry[] = [];
    for (const members of stacks.values()) {
      const e = entries[members[0]!]!;
      if (e.key === undefined || seen.has(e.key)) continue;
      seen.add(e.key);
      factor.push(e);
    }
    factor.sort((a, b) => b.problem.cols - a.problem.cols);
    for (let c = 0; c < factor.length; ) {
      const widest = factor[c]!.problem.cols;
      const per = Math.max(1, Math.floor(BATCH_BYTES / (4 * graph.padded(widest) ** 2)));
      let end = c + 1;
      while (end < factor.length && end - c < per && (graph.padRows || factor[end]!.problem.cols === widest)) end++;
      const part = factor.slice(c, end);
      const engine = part.length > 1 ? graph.batch(part.length) : graph;
      await Promise.all(part.map(async (e) => prepared.set(e.key!, await this.prepare(e.l.module, e.l.args, e.problem.cols, engine))));
      c = end;
    }
    const out: GptqSolution[] = new Array(entries.length);
    for (const batch of batches) {
      const k = entries[batch[0]![0]!]!.problem.cols;
      // Factors used by one batched run stay within BATCH_BYTES.
      const per = Math.max(1, Math.floor(BATCH_BYTES / (4 * k * k)));
      for (let c = 0; c < batch.length; c += per) {
        const part = batch.slice(c, c + per);
        const firsts = part.map((members) => entries[members[0]!]!);
        const work = part.map((members, i) => ({ problems: members.map((m) => entries[m]!.problem), prep: firsts[i]!.key === undefined ? identityPrepared(k, orderingOf(firsts[i]!.l.args)) : prepared.get(firsts[i]!.key!)! }));
        const solved = await graph.solveAll(work, this.options);
        part.forEach((members, i) => members.forEach((m, j) => (out[m] = solved[i]![j]!)));
        for (const e of firsts) {
          if (e.key === undefined) continue;
          const left = users.get(e.key)! - 1;
          users.set(e.key, left);
          if (left === 0) prepared.delete(e.key);
        }
      }
    }
    return out;
  }
}

/** Bound on the float32 Hessians factored (and factors used) in one batched graph run. */
const BATCH_BYTES = 1 << 30;
/** Most rows a stack may be padded to, as a multiple of its own, to join a batch. */
const PAD_RATIO = 8;

/** A module to solve: its loaded weight, its Hessian key (undefined: rounded to nearest by the coverage policy) and problem. */
interface SolveEntry {
  readonly l: LoadedWeight;
  readonly key: string | undefined;
  readonly sum: { readonly n: number } | undefined;
  readonly problem: GptqProblem;
}

/** The problem's Hessian when a prepared one is passed to the solve (never read). */
const NO_HESSIAN: readonly number[] = [];

function identity(k: number): Float64Array {
  const h = new Float64Array(k * k);
  for (let i = 0; i < k; i++) h[i * k + i] = 1;
  return h;
}
