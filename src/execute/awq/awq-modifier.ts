/**
 * AWQModifier on the sequential pipeline. Pass A returns, inside the layer
 * graph, the input of every balance layer (its smooth layer's output, what
 * the parent module reads). Between the passes, each of the layer's
 * mappings in resolved order: `x_mean` = mean |x| per channel over every
 * token (the sums made in the layer graphs), the balance layers' normalised
 * weight means, then the grid search — every grid point's pseudo-quantized
 * balance weights evaluated in one search graph per chunk of points, or on
 * CUDA the whole grid looped in one run per cached input (search-graph.ts), the loss being the
 * mean squared difference of the parent's output from its unquantized
 * output — and the best scales folded into the balance layers (multiplied)
 * and the smooth layer (divided), as llm-compressor's `_apply_smoothing`
 * does (algorithms.md §3.5). Pass B propagates the smoothed, unquantized layer.
 */
import type { QuantizationArgs } from '../../ir/types.js';
import type { AwqMapping } from '../../match/awq-mappings.js';
import { CoverageCollector } from '../calibrate/coverage.js';
import type { DenseMatrix } from '../forward/dequantize.js';
import { windowOf } from '../forward/decoder-config.js';
import type { ForwardModel, LayerInputsFor } from '../forward/executor.js';
import { LLAMA_LIKE } from '../forward/decoder-config.js';
import { loopFeeds, splitStack, type HiddenStack, type RecordingBuilder } from '../forward/layer-loop.js';
import type { LayerInputs } from '../forward/llama-layer.js';
import { LOOP_RUN_BYTES } from '../pipeline/sequential.js';
import type { Observation } from '../forward/observe.js';
import { NO_CHANGES, OverlayWeights, type WeightChanges } from '../pipeline/overlay-weights.js';
import type { FusedExpertsParam } from '../types.js';
import { storedBlockName } from '../weight-source.js';
import type { LayerModifier } from '../pipeline/sequential.js';
import { dtypeFacts } from '../rtn/qparams.js';
import type { WeightDtype } from '../rtn/weight-kernel.js';
import { emptyRuntimeTimings, GraphRuntime, type RawTensor } from '../runtime.js';
import { feedTensors, structureKey } from '../forward/fed-weights.js';
import { WeightFeeds } from '../onnx/graph-builder.js';
import { divideRows, flooredChannels, gridPoints, gridScales, layerMeans, scaleColumns, searchWeight, type BalanceWeight, type DuoScaling, type GridPoint } from './awq-scales.js';
import { awqParentKind, moeBalance, routerName, SEARCHABLE_MOE_BLOCKS } from './parent-kind.js';
import { candidatesGraph, jointSearchGraph, loopedSearchGraph, searchGraph, stackedSearchGraph, type CandidateInput, type InGraphQuantizer, type MoeParent, type MoeRouting, type ParentKind, type ParentWeights, type SearchGraphSpec } from './search-graph.js';

/** What AWQ did to one mapping. */
export interface AwqReport {
  readonly smooth: string;
  readonly balance: readonly string[];
  readonly parent: string;
  /** Tokens the activation means were taken over. */
  readonly tokens: number;
  readonly xMean: Float32Array;
  /** Losses of the grid points, in grid order. */
  readonly losses: readonly number[];
  /** Index of the grid point kept. */
  readonly best: number;
  readonly point: GridPoint;
  /** The scales folded in. */
  readonly scales: Float64Array;
  /** Channels whose chosen scale is AWQ's floor before normalisation. */
  readonly floored: number;
  /** Grid points the search evaluated together (one run, or one loop iteration, per cached input or slot). */
  readonly chunk: number;
}

/** AWQ cannot run a mapping; the message is user-facing. */
export class AwqRunError extends Error {}

/** Settings of an AWQ run. */
export interface AwqSettings {
  readonly duoScaling: DuoScaling;
  readonly nGrid: number;
  /** Each quantized module's weight arguments (modules absent here have no scheme). */
  readonly args: ReadonlyMap<string, QuantizationArgs>;
  readonly calibrateAllExperts: boolean;
  /** Activations and candidate weights one search-graph run may hold (bytes, estimated; 1 GiB on the CPU, 8 GiB on CUDA by default). */
  readonly searchBytes?: number;
  /**
   * Where integer weights are pseudo-quantized for the search: `search-loop` (inside the search graph, the whole
   * grid in one run per cached input, a `Loop` over chunks of points; the default on CUDA), `search-graph` (inside
   * the search graph, one run per chunk of points and cached input), `graph` (a graph of their own, once per chunk
   * of grid points; the default on the CPU) or `host` (here, as for every other scheme).
   */
  readonly candidates?: 'search-loop' | 'search-graph' | 'graph' | 'host';
  /** The job's fused expert parameters (experts read one by one from their fused tensors). */
  readonly fusedExperts?: readonly FusedExpertsParam[];
  /** Zero-centred norm weights (scale `1 + weight`, see offset-norms.ts), smoothed as llm-compressor smooths them. */
  readonly offsetNorms?: ReadonlySet<string>;
  /**
   * Whether the search recomputes each mapping's parent input from the
   * layer's input stack on the device (pass A then returns only the
   * activation sums and runs looped) instead of caching it in host memory.
   * Default: where the layer passes run stacked (CUDA), on dense llama-like
   * layers whose parents are self-attention, the MLP or a Linear, with the
   * grid looped in the search graph.
   */
  readonly recompute?: boolean;
  /**
   * Where the search recomputes its parent inputs, whether a layer's
   * mappings are searched in one run (see AwqModifier.smoothJointly) when no
   * mapping's search reads a weight an earlier one smooths. Default: on
   * (`QUANTC_AWQ_JOINT=0` turns it off).
   */
  readonly joint?: boolean;
}

/** Search sessions kept across layers: one per mapping of a layer (attention, output projection, MLP, down projection). */
const SHARED_SEARCH_SESSIONS = 4;

const DTYPES: Readonly<Record<ForwardModel['config']['dtype'], WeightDtype>> = { bfloat16: 'BF16', float16: 'F16', float32: 'F32' };

/** `QUANTC_AWQ_CANDIDATES`: where candidates are made when the settings do not say (comparisons, profiling; see {@link AwqSettings.candidates}). */
function candidatesFromEnv(): AwqSettings['candidates'] {
  const v = process.env.QUANTC_AWQ_CANDIDATES;
  return v === 'search-loop' || v === 'search-graph' || v === 'graph' || v === 'host' ? v : undefined;
}

/**
 * What a mapping's search replays its parent on: the inputs pass A cached
 * (`rowsPerRun`: the tokens llm-compressor counts per run, Llama 4's routed
 * copies), or the layer's input stack, the parent input rebuilt on the device.
 */
type SearchSource = { readonly cached: readonly RawTensor[]; readonly rowsPerRun?: (rows: number) => number } | { readonly stack: HiddenStack };

/** One layer's smoothing so far (the weights it changed) and how a search reads the layer's weights through it. */
interface LayerState {
  readonly linears: Map<string, DenseMatrix>;
  readonly vectors: Map<string, Float32Array>;
  readonly weight: (name: string) => Promise<DenseMatrix>;
  readonly vector: (name: string) => Promise<Float32Array | undefined>;
  /** The checkpoint with this layer's smoothing so far, for parents whose graph reads its weights by name (MLA). */
  readonly current: OverlayWeights;
}

/** What one mapping's grid search runs on. */
interface SearchRequest {
  readonly m: AwqMapping;
  readonly kind: ParentKind;
  readonly layer: number;
  readonly balance: readonly BalanceWeight[];
  readonly xMean: Float32Array;
  readonly source: SearchSource;
  readonly state: LayerState;
}

/** A mapping's grid search: every point's loss, the best point and its scales. */
interface SearchResult {
  readonly scales: Float64Array;
  readonly losses: number[];
  readonly best: number;
  readonly floored: number;
  readonly chunk: number;
}

/** What a mapping's search decided before running (AwqModifier.planSearch), and the losses its runs sum. */
interface SearchPlan {
  readonly m: AwqMapping;
  readonly kind: ParentKind;
  readonly layer: number;
  readonly balance: readonly BalanceWeight[];
  readonly xMean: Float32Array;
  readonly wMean: Float64Array | null;
  /** Every grid point's scale row. */
  readonly scales: readonly Float64Array[];
  readonly inputs: readonly RawTensor[];
  readonly stack: HiddenStack | null;
  readonly spec: SearchGraphSpec;
  readonly input: CandidateInput;
  readonly inGraph: boolean;
  readonly perRun: boolean;
  readonly looped: boolean;
  readonly precompute: boolean;
  readonly makeCandidates: Uint8Array | null;
  /** Grid points a run or loop iteration evaluates. */
  readonly chunk: number;
  /** Rows of a looped search's scales (the grid padded to whole chunks). */
  readonly padded: number;
  /** Elements the losses are means over. */
  readonly numel: number;
  readonly precision: SearchGraphSpec['precision'];
  /** The candidates a stacked search keeps for all its slots (bytes, estimated), its budget, and its chunk given the room left. */
  readonly room: { readonly storedBytes: number; readonly budget: number; readonly chunkIn: (bytes: number) => number };
  /** Each point's summed squared error so far. */
  readonly sums: Float64Array;
}

/** An expert module's name with its index as `*` (the key experts sharing an input are observed under). */
function expertPattern(name: string): string {
  return name.replace(/\.experts\.\d+\./, '.experts.*.');
}

function layerOf(name: string): number | null {
  const m = /(?:^|\.)layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

/** How the search evaluates a mapping's parent (the plan refuses the others, see parent-kind.ts). */
function parentKind(m: AwqMapping): ParentKind {
  const kind = awqParentKind(m, m.parentClass);
  if (kind === null) throw new AwqRunError(`${m.smooth}: AWQ's grid search cannot evaluate the parent module "${m.parent}" of ${m.balance.join(', ')}`);
  return kind;
}

/** The AWQ {@link LayerModifier}. */
export class AwqModifier implements LayerModifier {
  readonly observe: Observation;
  readonly linears = new Map<string, DenseMatrix>();
  readonly vectors = new Map<string, Float32Array>();
  readonly reports: AwqReport[] = [];
  /** Where the grid searches spend their time: onnxruntime sessions and runs, and the activation means (milliseconds; profiling). */
  readonly profile = { search: emptyRuntimeTimings(), means: 0 };
  readonly coverage = new CoverageCollector();
  private inputs = new Map<string, RawTensor[]>();
  /** Each observed input's `Σ|x|` per channel, one per run (the graphs' `xabs:` / `xeabs:` outputs), keyed as {@link inputs}. */
  private absSums = new Map<string, Float32Array[]>();
  private readonly dtype: WeightDtype;
  private readonly round: (x: number) => number;
  private readonly tables: LayerInputsFor;
  private readonly grid: GridPoint[];
  /** The checkpoint's Linears by plan name: one expert of a fused tensor, mixtral's stored `block_sparse_moe` layout. */
  private readonly reader: OverlayWeights;
  /** See {@link AwqSettings.recompute}. */
  readonly recompute: boolean;
  /** See {@link AwqSettings.joint}. */
  private readonly joint: boolean;
  /** Search sessions kept across layers where the searches feed their weights (see {@link search}). */
  private shared?: GraphRuntime;

  constructor(
    private readonly model: ForwardModel,
    private readonly mappings: readonly AwqMapping[],
    private readonly settings: AwqSettings,
  ) {
    // Only the inputs some mapping reads (its balance layers', Llama 4's router's) come back from pass A.
    const read = new Set(mappings.flatMap((m) => [...m.balance, `${m.parent}.router`]).map(expertPattern));
    const wanted = (module: string): boolean => read.has(expertPattern(module));
    this.dtype = DTYPES[model.config.dtype];
    this.recompute = settings.recompute ?? (model.loopLayers && this.candidatesWhere() === 'search-loop' && this.recomputable());
    this.joint = settings.joint ?? process.env.QUANTC_AWQ_JOINT !== '0';
    const experts = settings.calibrateAllExperts ? 'all' : 'routed';
    this.observe = this.recompute ? { experts, hessians: false, inputSums: wanted } : { experts, hessians: false, inputs: wanted };
    this.round = dtypeFacts(this.dtype).round;
    this.tables = model.positionTables();
    this.grid = gridPoints(settings.duoScaling, settings.nGrid);
    this.reader = new OverlayWeights(model.weights, NO_CHANGES, settings.fusedExperts ?? []);
  }

  /** Where candidates are made (see {@link AwqSettings.candidates}). */
  private candidatesWhere(): NonNullable<AwqSettings['candidates']> {
    return this.settings.candidates ?? candidatesFromEnv() ?? (this.model.device === 'cuda' ? 'search-loop' : 'graph');
  }

  /**
   * Whether every mapping's search can run on the layer's input stack: a
   * dense llama-like layer (its looped graph rebuilds any input), parents
   * the search evaluates from one input, and every quantized balance layer
   * pseudo-quantized in the graph.
   */
  private recomputable(): boolean {
    if (!LLAMA_LIKE.has(this.model.config.modelType)) return false;
    return this.mappings.every((m) => {
      const kind = awqParentKind(m, m.parentClass);
      if (kind !== 'attention' && kind !== 'mlp' && kind !== 'linear') return false;
      return m.balance.every((b) => {
        const args = this.settings.args.get(b) ?? null;
        const shape = this.model.weights.index.tensors.get(`${b}.weight`)?.shape;
        return args === null || (shape !== undefined && inGraphQuantizer({ data: new Float32Array(0), rows: shape[0]!, cols: shape[1]!, args }, this.dtype) !== undefined);
      });
    });
  }

  /**
   * The runtime of the searches that feed their weights (where the layer
   * passes do: CUDA): one session per search shape for every layer, as the
   * layer passes share theirs, instead of one per mapping and layer.
   */
  private searchRuntime(): GraphRuntime {
    if (!this.shared) {
      this.shared = this.newSearchRuntime();
      this.shared.maxSessions = SHARED_SEARCH_SESSIONS;
    }
    return this.shared;
  }

  /** A runtime for search graphs, timed in {@link profile}; constants folded where the layer passes fold theirs (not on CUDA). */
  private newSearchRuntime(): GraphRuntime {
    const rt = new GraphRuntime(this.model.device);
    rt.deviceId = this.model.deviceIds?.[0];
    rt.timings = this.profile.search;
    rt.foldConstants = this.model.foldConstants;
    return rt;
  }

  /** Releases the shared search sessions. */
  async release(): Promise<void> {
    const rt = this.shared;
    this.shared = undefined;
    await rt?.dispose();
  }

  /** True for a layer that one of the mappings smooths. */
  changesLayer(layer: number): boolean {
    return this.mappings.some((m) => layerOf(m.smooth) === layer);
  }

  /** Linear `name` (a plan name) as the checkpoint stores it. */
  private stored(name: string): Promise<DenseMatrix> {
    return this.reader.linear(this.reader.hasLinear(name) ? name : storedBlockName(this.model.weights.index, name));
  }

  private hasStored(name: string): boolean {
    return this.reader.hasLinear(name) || this.reader.hasLinear(storedBlockName(this.model.weights.index, name));
  }

  collect(layer: number, _run: number, _rows: number, _calls: number, outputs: Readonly<Record<string, RawTensor>>): void {
    this.coverage.add(layer, outputs);
    const keep = (module: string, t: RawTensor): void => {
      const list = this.inputs.get(module) ?? [];
      list.push(t);
      this.inputs.set(module, list);
    };
    const keepSum = (module: string, sum: Float32Array): void => {
      const list = this.absSums.get(module) ?? [];
      list.push(sum);
      this.absSums.set(module, list);
    };
    for (const [name, t] of Object.entries(outputs)) {
      if (name.startsWith('x:')) for (const module of name.slice(2).split(',')) keep(module, t);
      else if (name.startsWith('xabs:')) for (const module of name.slice(5).split(',')) keepSum(module, t.data as Float32Array);
      else if (name.startsWith('xeabs:')) {
        const [experts, proj, offset] = name.slice(6).split('|') as [string, string, string];
        const [e, k] = t.dims as [number, number];
        for (let i = 0; i < e; i++) keepSum(`${experts}.${Number(offset) + i}.${proj}`, (t.data as Float32Array).slice(i * k, (i + 1) * k));
      } else if (name.startsWith('xe:')) {
        // Per-expert inputs [E, N, K]: one [N, K] tensor per expert.
        const [experts, proj, offset] = name.slice(3).split('|') as [string, string, string];
        const [e, n, k] = t.dims as [number, number, number];
        const data = t.data as Float32Array;
        for (let i = 0; i < e; i++) keep(`${experts}.${Number(offset) + i}.${proj}`, { type: 'float32', data: data.slice(i * n * k, (i + 1) * n * k), dims: [n, k] });
      }
    }
  }

  async finishLayer(layer: number, input?: HiddenStack): Promise<WeightChanges> {
    if (this.recompute && input === undefined) throw new AwqRunError(`layer ${layer}: AWQ's recomputed search needs the layer's input stack`);
    const linears = new Map<string, DenseMatrix>();
    const vectors = new Map<string, Float32Array>();
    const weight = async (name: string): Promise<DenseMatrix> => linears.get(name) ?? (await this.stored(name));
    const vector = async (name: string): Promise<Float32Array | undefined> => vectors.get(name) ?? (await this.model.weights.optionalVector(name));
    const state: LayerState = { linears, vectors, weight, vector, current: new OverlayWeights(this.reader, { linears, vectors }, []) };
    const here = this.mappings.filter((m) => layerOf(m.smooth) === layer);
    const jointly = this.recompute && this.joint && here.length > 1 && independentSearches(here);
    if (jointly) await this.smoothJointly(here, layer, input!, state);
    for (const m of jointly ? [] : here) {
      const kind = parentKind(m);
      if (this.recompute) {
        await this.smoothMapping(m, kind, layer, this.stackMeans(m, input!), { stack: input! }, state);
        continue;
      }
      // Every balance layer reads the smooth layer's output; experts sharing the block input are observed once for all.
      const key = m.balance.map((b) => (this.inputs.has(b) ? b : expertPattern(b))).find((b) => this.inputs.has(b));
      const observed = key === undefined ? undefined : this.inputs.get(key);
      if (!observed || observed.length === 0) throw new AwqRunError(`${m.smooth}: the calibration pass never observed the input of ${m.balance[0]}, so its activations cannot be scaled`);
      // Llama 4's experts read the block input scaled by their routing weight, each expert every token (llm-compressor's
      // statistics cover every expert's copy); the search replays the block on its own input, the router's.
      const llama4 = kind === 'moe' && SEARCHABLE_MOE_BLOCKS.get(m.parentClass ?? '') === 'input-sigmoid';
      const inputs = llama4 ? (this.inputs.get(`${m.parent}.router`) ?? []) : observed;
      if (inputs.length === 0) throw new AwqRunError(`${m.smooth}: the calibration pass never observed the input of ${m.parent}.router`);
      const copyRows = this.routedCopyRows(m);
      const m0 = performance.now();
      const { xMean, tokens } = activationMeans(observed, this.absSums.get(key!), copyRows);
      this.profile.means += performance.now() - m0;
      await this.smoothMapping(m, kind, layer, { xMean, tokens }, { cached: inputs, rowsPerRun: llama4 ? undefined : copyRows }, state);
    }
    for (const [k, v] of linears) this.linears.set(k, v);
    for (const [k, v] of vectors) this.vectors.set(k, v);
    this.inputs = new Map();
    this.absSums = new Map();
    return { linears, vectors };
  }

  /** Mapping `m`'s activation means over the layer's input stack, from pass A's sums. */
  private stackMeans(m: AwqMapping, input: HiddenStack): { xMean: Float32Array; tokens: number } {
    const sums = m.balance.map((b) => this.absSums.get(b)).find((x) => x !== undefined);
    if (!sums || sums.length === 0) throw new AwqRunError(`${m.smooth}: the calibration pass never observed the input of ${m.balance[0]}, so its activations cannot be scaled`);
    const tokens = input.batches.reduce((n, b) => n + b.batch * b.seq, 0);
    const total = new Float32Array(sums[0]!.length);
    for (const part of sums) for (let c = 0; c < total.length; c++) total[c] = total[c]! + part[c]!;
    return { xMean: total.map((v) => v / tokens), tokens };
  }

  /**
   * The mappings of one layer searched in one run on its input stack (see
   * {@link independentSearches}): each slot's layer rebuilt once for all of
   * them, every mapping's grid evaluated on its own parent input, then the
   * scales folded mapping by mapping, as one search at a time folds them.
   * Mappings whose search cannot join the run (candidates that do not fit
   * to be made up front) run on their own, before the folds.
   */
  private async smoothJointly(
    ms: readonly AwqMapping[],
    layer: number,
    input: HiddenStack,
    state: LayerState,
  ): Promise<void> {
    const planned: { m: AwqMapping; means: { xMean: Float32Array; tokens: number }; balance: BalanceWeight[]; plan: SearchPlan | { readonly result: SearchResult } }[] = [];
    for (const m of ms) {
      const means = this.stackMeans(m, input);
      const balance = await this.balanceOf(m, state.weight);
      planned.push({ m, means, balance, plan: await this.planSearch({ m, kind: parentKind(m), layer, balance, xMean: means.xMean, source: { stack: input }, state }) });
    }
    const plans = planned.flatMap((p) => ('result' in p.plan ? [] : [p.plan]));
    // The searches whose candidates are made up front join the run while every one's candidates fit beside each
    // other's: its chunk then comes from the room they all leave.
    const candidates = plans.filter((p) => p.stack !== null && p.looped && p.precompute);
    const stored = candidates.reduce((n, p) => n + p.room.storedBytes, 0);
    const joined = new Map(candidates.length > 1 && candidates.every((p) => stored < p.room.budget) ? candidates.map((p) => [p, this.replanned(p, p.room.budget - stored)]) : []);
    if (joined.size > 0) await this.runStacked([...joined.values()], layer, input);
    for (const p of plans) if (!joined.has(p)) await this.runPlan(p);
    for (const { m, means, balance, plan } of planned) {
      await this.fold(m, means, balance, 'result' in plan ? plan.result : this.choose(joined.get(plan) ?? plan), state);
    }
  }

  /** `plan` with its chunk (and padding) for `room` bytes of activations and candidates' slices; its sums are the same array. */
  private replanned(plan: SearchPlan, room: number): SearchPlan {
    const chunk = Math.ceil(this.grid.length / Math.ceil(this.grid.length / plan.room.chunkIn(room)));
    return { ...plan, chunk, padded: Math.ceil(this.grid.length / chunk) * chunk };
  }

  /**
   * The searches of `plans` on the layer's input stack, one run per stack
   * (split where it is large) for all of them: a mapping's alone (see
   * stackedSearchGraph), or several whose candidates are made up front (see
   * {@link smoothJointly}); each plan's losses summed into it.
   */
  private async runStacked(plans: readonly SearchPlan[], layer: number, stack: HiddenStack): Promise<void> {
    const cfg = this.model.config;
    // One set of fed weights for the graph: every mapping's weights are its inputs.
    const feeds = this.model.feedWeights ? new WeightFeeds() : undefined;
    const parts = plans.map((p) => ({ spec: { ...p.spec, feeds, candidates: p.input as Extract<CandidateInput, { kind: 'scales' }> }, chunk: p.chunk, points: p.padded }));
    const one = plans.length === 1 ? plans[0]! : null;
    const graph = one
      ? await stackedSearchGraph(parts[0]!.spec, one.chunk, stack.rows, (g, inp) => this.parentInput(one.m, layer, g, inp), one.precompute, stack.dtype, one.padded)
      : await jointSearchGraph(parts, stack.rows, (g, inp) => this.parentInputs(plans.map((p) => p.m), layer, g, inp), stack.dtype);
    const rt = feeds ? this.searchRuntime() : this.newSearchRuntime();
    try {
      // A graph's session key: its name, or where its weights are fed its structure (the runtime serves every layer).
      const { key, weights } = feeds ? { key: structureKey('awq_search_stack', graph), weights: await feedTensors(feeds) } : { key: 'awq_search_stack', weights: {} };
      const tables = this.tables(Math.max(...stack.batches.map((b) => b.seq)), windowOf(cfg, layer));
      const scales = Object.fromEntries(plans.map((p, i) => [`s${i}`, this.paddedScales(p)]));
      for (const run of splitStack(stack, LOOP_RUN_BYTES)) {
        const { loss } = await rt.run(key, () => graph, { ...loopFeeds(run, tables), ...scales, ...weights });
        const l = loss!.data as Float32Array;
        const width = loss!.dims[1]!;
        // Each slot's losses, in slot order; a slot's row holds every mapping's padded grid in turn.
        for (let slot = 0; slot < loss!.dims[0]!; slot++) {
          let offset = slot * width;
          for (const p of plans) {
            this.add(p, l, offset);
            offset += p.padded;
          }
        }
      }
    } finally {
      if (!feeds) await rt.dispose();
    }
  }

  /** The balance layers of `m` as they stand, with their weight arguments. */
  private async balanceOf(m: AwqMapping, weight: (name: string) => Promise<DenseMatrix>): Promise<BalanceWeight[]> {
    return Promise.all(m.balance.map(async (b) => ({ ...(await weight(b)), args: this.settings.args.get(b) ?? null })));
  }

  /**
   * One mapping's grid search on `source` (cached inputs, or the layer's
   * input stack to recompute them from) and its scales folded into the
   * balance layers and the smooth layer (into `linears` / `vectors`).
   */
  private async smoothMapping(
    m: AwqMapping,
    kind: ParentKind,
    layer: number,
    means: { readonly xMean: Float32Array; readonly tokens: number },
    source: SearchSource,
    state: LayerState,
  ): Promise<void> {
    const balance = await this.balanceOf(m, state.weight);
    const search = await this.search({ m, kind, layer, balance, xMean: means.xMean, source, state });
    await this.fold(m, means, balance, search, state);
  }

  /** Mapping `m`'s chosen scales folded into its balance layers and its smooth layer (into `linears` / `vectors`), and its report. */
  private async fold(
    m: AwqMapping,
    means: { readonly xMean: Float32Array; readonly tokens: number },
    balance: readonly BalanceWeight[],
    search: SearchResult,
    state: LayerState,
  ): Promise<void> {
    const { linears, vectors, weight, vector } = state;
    const { xMean, tokens } = means;
    const s = search.scales;
    m.balance.forEach((b, i) => {
      const w = balance[i]!;
      linears.set(b, { data: scaleColumns(w.data, w.rows, w.cols, s, this.round), rows: w.rows, cols: w.cols });
    });
    const normName = `${m.smooth}.weight`;
    // A 1-D weight is a norm's (its bias too, a LayerNorm's: PhiMoE's); a Linear smooth layer (v_proj, up_proj) has its output rows divided.
    if (this.model.weights.index.tensors.get(normName)?.shape.length === 1) {
      const norm = (await vector(normName))!;
      // An offset norm is smoothed as the plain norm llm-compressor swaps in (weight 1 + w, in the model's dtype) and written back as `scale - 1`.
      const offset = this.settings.offsetNorms?.has(normName) === true;
      const plain = offset ? norm.map((v) => this.round(Math.fround(1 + v))) : norm;
      const divided = divideRows(plain, plain.length, 1, s, this.round);
      vectors.set(normName, offset ? divided.map((v) => this.round(Math.fround(v - 1))) : divided);
      const bias = (await vector(`${m.smooth}.bias`)) ?? (await this.fusedBias(m.smooth));
      if (bias) vectors.set(`${m.smooth}.bias`, divideRows(bias, bias.length, 1, s, this.round));
    } else {
      const w = await weight(m.smooth);
      linears.set(m.smooth, { data: divideRows(w.data, w.rows, w.cols, s, this.round), rows: w.rows, cols: w.cols });
      const bias = (await vector(`${m.smooth}.bias`)) ?? (await this.fusedBias(m.smooth));
      if (bias) vectors.set(`${m.smooth}.bias`, divideRows(bias, bias.length, 1, s, this.round));
    }
    this.reports.push({ smooth: m.smooth, balance: m.balance, parent: m.parent, tokens, xMean, losses: search.losses, best: search.best, point: this.grid[search.best]!, scales: s, floored: search.floored, chunk: search.chunk });
  }

  /**
   * The input of mapping `m`'s balance layers in a search graph: layer
   * `layer` as the checkpoint holds it (pass A's weights) built into `g` on
   * the slot's inputs, observed up to that input.
   */
  private async parentInput(m: AwqMapping, layer: number, g: RecordingBuilder, inputs: LayerInputs): Promise<string> {
    return (await this.parentInputs([m], layer, g, inputs))[0]!;
  }

  /** The inputs of the balance layers of each of `ms` (one layer's mappings), the layer built into `g` once for all of them (see {@link parentInput}). */
  private async parentInputs(ms: readonly AwqMapping[], layer: number, g: RecordingBuilder, inputs: LayerInputs): Promise<string[]> {
    const balance = new Set(ms.flatMap((m) => m.balance));
    const observe: Observation = { experts: 'all', hessians: false, inputs: (module) => balance.has(module) };
    if (!(await this.model.buildLayerInto(layer, this.model.weights, { g, inputs, output: 'awq_layer_out' }, observe))) throw new AwqRunError(`${ms[0]!.smooth}: layer ${layer} needs graphs of its own, so AWQ's search cannot rebuild its inputs`);
    return ms.map((m) => {
      const name = [...g.recorded.keys()].find((n) => n.startsWith('x:') && n.slice(2).split(',').includes(m.balance[0]!));
      if (name === undefined) throw new AwqRunError(`${m.smooth}: layer ${layer}'s graph does not observe the input of ${m.balance[0]}`);
      return g.recorded.get(name)!;
    });
  }

  /**
   * Rows llm-compressor counts per observed run of a Llama 4 expert's input
   * when every expert sees every token: its `[E·N, H]` routed copy, which
   * the forward observes (top-1) as each token times its score plus one zero
   * row; undefined for any other mapping.
   */
  private routedCopyRows(m: AwqMapping): ((rows: number) => number) | undefined {
    if (!this.settings.calibrateAllExperts || !String(this.model.config.modelType).startsWith('llama4')) return undefined;
    if (!/\.feed_forward\.experts\.(\d+|\*)\.(gate|up|down)_proj$/.test(m.balance[0]!.replace(/\.experts\.\d+\./, '.experts.*.'))) return undefined;
    const experts = Number(this.model.raw.num_local_experts ?? (this.model.raw.text_config as Record<string, unknown> | undefined)?.num_local_experts);
    return (rows) => experts * (rows - 1);
  }

  /** The MoE block parent of mapping `m`: its router, routing and the Linears outside the balance as they stand. */
  private async moeParent(m: AwqMapping, weight: (name: string) => Promise<DenseMatrix>, vector: (name: string) => Promise<Float32Array | undefined>): Promise<MoeParent> {
    const routerModule = `${m.parent}.${routerName(m.parentClass)}`;
    const roles = moeBalance(m, routerName(m.parentClass))!;
    const raw = this.model.raw;
    const p = m.parent;
    const fixed = [routerModule, `${p}.shared_expert_gate`].filter((n) => this.settings.args.has(n));
    if (fixed.length > 0) throw new AwqRunError(`${fixed[0]}: a quantized router or shared-expert gate is not pseudo-quantized by apply's AWQ search; add it to the quantization modifier's ignore list`);
    const family = SEARCHABLE_MOE_BLOCKS.get(m.parentClass ?? '');
    const gptOss = m.parentClass === 'GptOssMLP';
    const experts = await Promise.all(
      [...roles.experts.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(async ([e, { gate, up }]) => ({ gate, up, down: await weight(`${p}.experts.${e}.down_proj`), ...(gptOss ? await this.gptOssExpertBiases(p, e, vector) : {}) })),
    );
    if (experts.some((_, i) => !roles.experts.has(i))) throw new AwqRunError(`${m.smooth}: the experts of "${p}" it balances are not numbered 0…${experts.length - 1}`);
    const router = roles.router !== null ? await weight(routerModule) : await this.storedRouter(routerModule);
    // The routing weights are combined by position: every expert of the block must be balanced.
    if (experts.length !== router.rows) throw new AwqRunError(`${m.smooth}: its mapping balances ${experts.length} of the ${router.rows} experts of "${p}"; apply's AWQ search needs all of them in one mapping`);
    const topK = Number(raw.num_experts_per_tok ?? 2);
    const routing: MoeRouting =
      family === 'sigmoid'
        ? { kind: 'sigmoid', bias: await vector(`${p}.gate.e_score_correction_bias`), raw, experts: router.rows }
        : family === 'topk-softmax'
          ? { kind: 'topk-softmax', topK }
          : family === 'sparsemixer'
            ? { kind: 'sparsemixer', jitterEps: typeof raw.router_jitter_noise === 'number' ? raw.router_jitter_noise : 0.01 }
            : family === 'input-sigmoid'
              ? { kind: 'input-sigmoid', topK: Number(raw.num_experts_per_tok ?? 1) }
            : { kind: 'softmax', topK, normalize: m.parentClass === 'MixtralSparseMoeBlock' || raw.norm_topk_prob === true, keepFloat32: m.parentClass === 'MixtralSparseMoeBlock' };
    // Qwen2-MoE names its shared expert `shared_expert` (gated), DeepSeek-V3 and GLM `shared_experts`.
    const sharedName = [`${p}.shared_expert`, `${p}.shared_experts`].find((n) => this.hasStored(`${n}.down_proj`));
    let shared: MoeParent['shared'];
    if (sharedName) {
      const part = async (proj: 'gate' | 'up'): Promise<number | DenseMatrix> => (roles.shared ? roles.shared[proj] : await weight(`${sharedName}.${proj}_proj`));
      const gated = this.hasStored(`${p}.shared_expert_gate`);
      shared = { gate: await part('gate'), up: await part('up'), down: await weight(`${sharedName}.down_proj`), ...(gated ? { sigmoidGate: await weight(`${p}.shared_expert_gate`) } : {}) };
    }
    const routerBias = gptOss ? await vector(`${routerModule}.bias`) : undefined;
    return { router, routing, experts, ...(shared ? { shared } : {}), ...(routerBias ? { routerBias } : {}), ...(gptOss ? { activation: 'gpt-oss' as const } : {}) };
  }

  /**
   * Expert `e`'s biases in gpt-oss's block `p`: per expert where the checkpoint
   * has them, else the halves of the fused `gate_up_proj_bias` (gate the
   * first, as llm-compressor splits the columns) and `down_proj_bias`.
   */
  private async gptOssExpertBiases(p: string, e: number, vector: (name: string) => Promise<Float32Array | undefined>): Promise<{ gateBias?: Float32Array; upBias?: Float32Array; downBias?: Float32Array }> {
    const bias = async (proj: string): Promise<Float32Array | undefined> => (await vector(`${p}.experts.${e}.${proj}.bias`)) ?? (await this.fusedBias(`${p}.experts.${e}.${proj}`));
    return { gateBias: await bias('gate_proj'), upBias: await bias('up_proj'), downBias: await bias('down_proj') };
  }

  /** The bias of expert Linear `name` (a plan name) cut from its fused `[E, out]` bias, as llm-compressor splits it; undefined when there is none. */
  private async fusedBias(name: string): Promise<Float32Array | undefined> {
    for (const param of this.settings.fusedExperts ?? []) {
      if (param.bias === undefined || !name.startsWith(`${param.expertsModule}.`) || !this.model.weights.has(param.bias)) continue;
      const [expert, proj, ...rest] = name.slice(param.expertsModule.length + 1).split('.');
      const p = param.projections.indexOf(proj ?? '');
      if (rest.length > 0 || p < 0 || !/^\d+$/.test(expert ?? '')) continue;
      const all = await this.model.weights.slice(param.bias, Number(expert), 1);
      const rows = all.length / param.projections.length;
      return all.slice(p * rows, (p + 1) * rows);
    }
    return undefined;
  }

  /**
   * An unbalanced router as the checkpoint stores it: under its plan name, or
   * PhiMoE's original `block_sparse_moe.gate`, or GraniteMoE's `router.layer`
   * (both renamed `router` by transformers 5 on load).
   */
  private async storedRouter(name: string): Promise<DenseMatrix> {
    const block = name.slice(0, name.lastIndexOf('.'));
    const stored = [name, storedBlockName(this.model.weights.index, name), `${storedBlockName(this.model.weights.index, block)}.gate`, `${name}.layer`].find((n) => this.reader.hasLinear(n));
    if (stored === undefined) throw new AwqRunError(`${name}: the checkpoint has no router weight for it`);
    return this.reader.linear(stored);
  }

  /** The grid search of one mapping: every point's loss, and the best point's scales. */
  private async search(request: SearchRequest): Promise<SearchResult> {
    const plan = await this.planSearch(request);
    if ('result' in plan) return plan.result;
    await this.runPlan(plan);
    return this.choose(plan);
  }

  /** Everything a mapping's search decides before it runs (see {@link search}); the result itself where there is nothing to search. */
  private async planSearch(request: SearchRequest): Promise<SearchPlan | { readonly result: SearchResult }> {
    const { m, kind, layer, balance, xMean, source } = request;
    const { weight, vector, current } = request.state;
    if (!xMean.every(Number.isFinite)) throw new AwqRunError(`${m.smooth}: its output overflowed on the calibration data (NaN or infinity), so AWQ cannot scale it`);
    let inputs = 'cached' in source ? source.cached : [];
    const rowsPerRun = 'cached' in source ? source.rowsPerRun : undefined;
    const stack = 'stack' in source ? source.stack : null;
    const cfg = this.model.config;
    const quantized = balance.some((b) => b.args !== null);
    const wMean = this.settings.duoScaling !== false && quantized ? layerMeans(balance, this.round) : null;
    const scales = this.grid.map((p) => gridScales(xMean, wMean, p));
    if (!quantized) return { result: { scales: scales[0]!, losses: this.grid.map(() => 0), best: 0, floored: flooredChannels(xMean, wMean, this.grid[0]!), chunk: 0 } };
    const parent: ParentWeights =
      kind === 'moe'
        ? { biases: [], moe: await this.moeParent(m, weight, vector) }
        : kind === 'mla'
        ? { biases: await Promise.all(m.balance.map((b) => vector(`${b}.bias`))), mla: { reader: current, attention: m.parent, raw: this.model.raw, direct: m.balance[0]!.endsWith('.q_proj') } }
        : kind === 'attention'
        ? {
            out: await weight(`${m.parent}.o_proj`),
            outBias: cfg.attentionBias ? await vector(`${m.parent}.o_proj.bias`) : undefined,
            biases: await Promise.all(m.balance.map((b) => (cfg.attentionBias ? vector(`${b}.bias`) : undefined))),
            sinks: await vector(`${m.parent}.sinks`),
            qNorm: await vector(`${m.parent}.q_norm.weight`),
            kNorm: await vector(`${m.parent}.k_norm.weight`),
          }
        : kind === 'mlp'
          ? { out: await weight(`${m.parent}.down_proj`), outBias: cfg.mlpBias ? await vector(`${m.parent}.down_proj.bias`) : undefined, biases: await Promise.all(m.balance.map((b) => (cfg.mlpBias ? vector(`${b}.bias`) : undefined))) }
          : { biases: [await vector(`${m.balance[0]}.bias`)] };
    const quantizers = balance.map((b) => inGraphQuantizer(b, this.dtype));
    // Integer weights are pseudo-quantized by a graph (one scale row per point goes in): inside the search graph on CUDA,
    // where each run recomputes them on the device; by a graph of their own on the CPU, once per chunk of points. Other
    // schemes get their candidates from here.
    const where = this.candidatesWhere();
    const inGraph = where !== 'host' && quantizers.every((q, i) => q !== undefined || balance[i]!.args === null);
    const perRun = inGraph && (where === 'search-graph' || where === 'search-loop');
    const looped = perRun && where === 'search-loop';
    const input: CandidateInput = perRun ? { kind: 'scales', balance, quantizers: quantizers.map((q) => q ?? null) } : { kind: 'weights' };
    if (stack && !looped) throw new AwqRunError(`${m.smooth}: AWQ's recomputed search needs its candidates pseudo-quantized in the search graph`);
    // Dense parents and softmax-routed MoE blocks compute in the run's precision, as llm-compressor's forward of a bf16
    // model does; the other MoE blocks and MLA attention in float32 (docs/awq.md: Forward precision).
    const precision = kind === 'attention' || kind === 'mlp' || kind === 'linear' || (kind === 'moe' && parent.moe?.routing.kind === 'softmax') ? this.model.precision.low : undefined;
    // Where the layer passes feed their weights, so do the searches: same-shaped layers share their sessions.
    const feeds = this.model.feedWeights ? new WeightFeeds() : undefined;
    const spec = { kind, cfg, shapes: balance.map((b) => [b.rows, b.cols] as const), weights: parent, candidates: input, inputRank: stack || inputs[0]!.dims.length === 3 ? (3 as const) : (2 as const), precision, window: windowOf(cfg, layer), feeds, fusePlainAttention: this.model.fusePlainAttention };
    const makeCandidates = inGraph && !perRun ? candidatesGraph(balance, quantizers.map((q) => q ?? null)) : null;
    const outWidth = kind === 'linear' ? balance[0]!.rows : kind === 'moe' || kind === 'mla' ? cfg.hidden : parent.out!.rows;
    // Points per run: candidate weights plus the activations of the widest run.
    // A point's `W·s` is made in float64 in the graph, one balance layer at a time: its largest such transient.
    const transient = inGraph ? 8 * Math.max(...balance.map((b) => b.rows * b.cols)) : 0;
    const weightBytes = balance.reduce((n, b) => n + 4 * b.rows * b.cols, 0) * (inGraph ? 3 : 1) + transient;
    const budget = this.settings.searchBytes ?? (this.model.device === 'cuda' ? 2 ** 33 : 2 ** 30);
    // Attention scores take room only where they are materialised: the fused kernel (bf16 on CUDA) keeps them in its tiles,
    // so the whole grid fits one iteration, and each iteration's few hundred operator launches are paid once a sequence.
    // (The search's attention always passes its window, causal or sliding, as the fused kernel needs; sinks have their own attention.)
    const scoresMaterialised = kind === 'mla' || (kind === 'attention' && (precision?.fusedAttention !== true || parent.sinks !== undefined));
    // The stacked search makes every point's candidates once for all slots where they fit: float32, in at most half the
    // budget; where the MatMuls run in the low dtype (CUDA) they are stored in it (search-graph.ts: madeLow), and what
    // counts is their making (every point's float64 `W·s` and float32 steps, before the slots run and freed as they are
    // made) within the budget, then that dtype's copy of every point beside each iteration's activations.
    const elements = balance.reduce((n, b) => n + b.rows * b.cols, 0);
    const lowPossible = stack !== null && precision?.native === true;
    const candidateBytes = (4 * elements + transient) * (this.grid.length + 2);
    const makingBytes = (6 * elements + transient) * (this.grid.length + 2);
    const precompute = stack !== null && (lowPossible ? makingBytes <= budget : candidateBytes <= budget / 2);
    // Made once, a point's candidates cost an iteration only their slice (float32) and its low-precision copy, or stored
    // in the low dtype only their slice.
    const lowMade = precompute && lowPossible;
    const storedBytes = lowMade ? 2 * elements * (this.grid.length + 2) : candidateBytes;
    const pointBytes = precompute ? (lowMade ? 2 : 6) * elements : weightBytes;
    const chunkOf = (runs: readonly RawTensor[], room = budget): number => {
      const widest = stack ? stack.rows : Math.max(...runs.map((t) => t.data.length / balance[0]!.cols));
      const seqMax = stack ? Math.max(...stack.batches.map((b) => b.seq)) : Math.max(...runs.map((t) => (t.dims.length === 3 ? t.dims[1]! : 1)));
      const actBytes = 4 * widest * (balance.reduce((n, b) => n + b.rows, 0) + 2 * outWidth) * 2 + (scoresMaterialised ? 8 * widest * cfg.heads * seqMax : 0);
      return Math.max(1, Math.min(this.grid.length, Math.floor(room / (pointBytes + actBytes))));
    };
    let chunk = chunkOf(inputs, precompute ? budget - storedBytes : budget);
    // An attention parent's scores grow with the sequences of a run: where they leave room for few grid points,
    // runs of one sequence each fit more, and every cached input crosses the bus once per chunk of points.
    // (Looped, each input crosses once whatever the chunk.)
    // (In a low precision each batch's loss is rounded as a whole, so its sequences stay together.)
    if (!looped && !precision && chunk < this.grid.length && (kind === 'attention' || kind === 'mla') && inputs.some((t) => t.dims.length === 3 && t.dims[0]! > 1)) {
      const single = inputs.flatMap((t) => (t.dims.length === 3 ? sequencesOf(t) : [t]));
      if (chunkOf(single) > chunk) {
        inputs = single;
        chunk = chunkOf(single);
      }
    }
    // Looped, every iteration evaluates a whole chunk: as many iterations as the budget needs, the points spread
    // evenly over them, so that padding (copies of the last point) adds at most one point per iteration.
    if (looped) chunk = Math.ceil(this.grid.length / Math.ceil(this.grid.length / chunk));
    let numel = 0;
    const k = balance[0]!.cols;
    for (const t of inputs) numel += (rowsPerRun ? rowsPerRun(t.data.length / k) : t.data.length / k) * outWidth;
    if (stack) numel = stack.batches.reduce((n, b) => n + b.batch * b.seq, 0) * outWidth;
    // Looped, the scales padded with copies of the last point to whole chunks.
    const padded = looped ? Math.ceil(this.grid.length / chunk) * chunk : this.grid.length;
    // What a joint run re-plans the chunk from (see smoothJointly): the candidates kept for all slots, the budget, and a
    // point's share of an iteration.
    const room = { storedBytes: precompute ? storedBytes : 0, budget, chunkIn: (bytes: number): number => chunkOf(inputs, bytes) };
    return { m, kind, layer, balance, xMean, wMean, scales, inputs, stack, spec, input, inGraph, perRun, looped, precompute, makeCandidates, chunk, padded, numel, precision, room, sums: new Float64Array(this.grid.length) };
  }

  /**
   * Adds a run's losses to `plan`'s sums: `count` points from `start`, read
   * from `l` at `offset`; in float64, or in a low precision as
   * llm-compressor adds its batches' bf16 losses to a float32 total.
   */
  private add(plan: SearchPlan, l: ArrayLike<number>, offset = 0, start = 0, count = this.grid.length): void {
    const sums = plan.sums;
    for (let p = 0; p < count; p++) sums[start + p] = plan.precision ? Math.fround(sums[start + p]! + l[offset + p]!) : sums[start + p]! + l[offset + p]!;
  }

  /** The scale rows of every grid point of `plan`, padded to whole chunks (a looped search's input `s`). */
  private paddedScales(plan: SearchPlan): RawTensor {
    const k = plan.balance[0]!.cols;
    const sc = new Float64Array(plan.padded * k);
    for (let p = 0; p < plan.padded; p++) sc.set(plan.scales[Math.min(p, this.grid.length - 1)]!, p * k);
    return { type: 'float64', data: sc, dims: [plan.padded, k] };
  }

  /** Runs `plan`'s search graphs, its losses summed into `plan.sums`. */
  private async runPlan(plan: SearchPlan): Promise<void> {
    if (plan.stack) return this.runStacked([plan], plan.layer, plan.stack);
    const { kind, layer, balance, scales, inputs, spec, input, inGraph, perRun, looped, makeCandidates, chunk, padded } = plan;
    const cfg = this.model.config;
    const feeds = spec.feeds;
    const add = (l: ArrayLike<number>, offset?: number, start?: number, count?: number): void => this.add(plan, l, offset, start, count);
    const k = balance[0]!.cols;
    const rt = feeds ? this.searchRuntime() : this.newSearchRuntime();
    // A graph's session key: its name, or where its weights are fed its structure (the runtime serves every layer).
    const keyed = async (name: string, bytes: Uint8Array): Promise<{ key: string; weights: Record<string, RawTensor> }> =>
      feeds ? { key: structureKey(name, bytes), weights: await feedTensors(feeds) } : { key: name, weights: {} };
    try {
      if (looped) {
        // Every point in one run per cached input.
        const s = this.paddedScales(plan);
        const graph = await loopedSearchGraph({ ...spec, candidates: input as Extract<CandidateInput, { kind: 'scales' }> }, chunk, padded);
        const { key, weights } = await keyed('awq_search_loop', graph);
        for (const x of inputs) {
          const seq = x.dims.length === 3 ? x.dims[1]! : 1;
          const position = kind === 'attention' || kind === 'mla' ? this.tables(seq, windowOf(cfg, layer)) : {};
          const { loss } = await rt.run(key, () => graph, { x, s, ...position, ...weights });
          add(loss!.data as Float32Array);
        }
      }
      const graph = looped ? null : await searchGraph(spec);
      const { key, weights } = graph ? await keyed('awq_search', graph) : { key: '', weights: {} };
      // Candidates made by a graph of their own hold the weights as constants: keyed by all their bytes where the runtime is shared.
      const candidatesKey = makeCandidates && feeds ? structureKey('awq_candidates', makeCandidates) : 'awq_candidates';
      for (let start = 0; !looped && start < this.grid.length; start += chunk) {
        const count = Math.min(chunk, this.grid.length - start);
        const runFeeds: Record<string, RawTensor> = {};
        if (inGraph) {
          const sc = new Float64Array(count * k);
          for (let p = 0; p < count; p++) sc.set(scales[start + p]!, p * k);
          const s: RawTensor = { type: 'float64', data: sc, dims: [count, k] };
          if (perRun) runFeeds.s = s;
          else Object.assign(runFeeds, await rt.run(candidatesKey, () => makeCandidates!, { s }));
        } else
          balance.forEach((b, i) => {
            const size = b.rows * b.cols;
            const data = new Float32Array((count + 1) * size);
            data.set(b.data, 0);
            for (let p = 0; p < count; p++) data.set(b.args ? searchWeight(b, scales[start + p]!, this.dtype) : b.data, (p + 1) * size);
            runFeeds[`w${i}`] = { type: 'float32', data, dims: [count + 1, b.rows, b.cols] };
          });
        for (const x of inputs) {
          const seq = x.dims.length === 3 ? x.dims[1]! : 1;
          const position = kind === 'attention' || kind === 'mla' ? this.tables(seq, windowOf(cfg, layer)) : {};
          const { loss } = await rt.run(key, () => graph!, { x, ...runFeeds, ...position, ...weights });
          add(loss!.data as Float32Array, 0, start, count);
        }
      }
    } finally {
      if (!feeds) await rt.dispose();
    }
  }

  /** `plan`'s losses from its sums, and the best point (the first of the smallest loss). */
  private choose(plan: SearchPlan): SearchResult {
    const { m, sums, numel, precision, scales, xMean, wMean, chunk } = plan;
    // torch divides the float32 total by the element count as a float32.
    const losses = Array.from(sums, (v) => Math.fround(v / (precision ? Math.fround(numel) : numel)));
    let best = -1;
    let bestLoss = Infinity;
    losses.forEach((l, i) => {
      if (l < bestLoss) {
        bestLoss = l;
        best = i;
      }
    });
    if (best < 0) throw new AwqRunError(`${m.smooth}: no grid point gave a finite loss (the parent module "${m.parent}" produces NaN or infinity on the calibration data)`);
    return { scales: scales[best]!, losses, best, floored: flooredChannels(xMean, wMean, this.grid[best]!), chunk };
  }
}

/**
 * Whether each of one layer's mappings searches on weights that no earlier
 * one smooths: its balance layers (and their biases) and its parent's other
 * weights (o_proj, down_proj, the q/k norms, the sinks) are then the same
 * whether the searches run one after the other, each after the previous
 * one's folding, or all at once before any (llama's four: q/k/v, o, gate/up
 * and down). Parent inputs are rebuilt from the unsmoothed layer either way.
 */
export function independentSearches(ms: readonly AwqMapping[]): boolean {
  const smoothed = new Set<string>();
  for (const m of ms) {
    const kind = awqParentKind(m, m.parentClass);
    const reads = m.balance.flatMap((b) => [b, `${b}.bias`]);
    if (kind === 'attention') reads.push(`${m.parent}.o_proj`, `${m.parent}.o_proj.bias`, `${m.parent}.q_norm.weight`, `${m.parent}.k_norm.weight`, `${m.parent}.sinks`);
    else if (kind === 'mlp') reads.push(`${m.parent}.down_proj`, `${m.parent}.down_proj.bias`);
    else if (kind !== 'linear') return false;
    if (reads.some((r) => smoothed.has(r))) return false;
    for (const b of m.balance) smoothed.add(b);
    smoothed.add(m.smooth).add(`${m.smooth}.weight`).add(`${m.smooth}.bias`);
  }
  return true;
}

/** The in-graph quantizer of an integer min-max scheme with one scale per tensor, row or column group, in float32 or bf16; else undefined. */
function inGraphQuantizer(b: BalanceWeight, dtype: WeightDtype): InGraphQuantizer | undefined {
  const a = b.args;
  if (!a || a.type !== 'int' || (dtype !== 'F32' && dtype !== 'BF16')) return undefined;
  if (a.strategy === 'tensor') return { bits: a.num_bits, symmetric: a.symmetric, groupSize: null, dtype };
  if (a.strategy === 'channel') return { bits: a.num_bits, symmetric: a.symmetric, groupSize: b.cols, dtype };
  if (a.strategy === 'group' && a.group_size && b.cols % a.group_size === 0) return { bits: a.num_bits, symmetric: a.symmetric, groupSize: a.group_size, dtype };
  return undefined;
}

/**
 * `x_mean`: Σ|x| per channel over every token (float32 sums per run, added
 * in float32 as llm-compressor adds its per-batch sums), divided by the
 * token count. `sums` are the runs' sums from the graphs, one per input; a
 * graph that returned none has its input summed here.
 */
function activationMeans(inputs: readonly RawTensor[], sums: readonly Float32Array[] | undefined, rowsPerRun?: (rows: number) => number): { xMean: Float32Array; tokens: number } {
  const k = inputs[0]!.dims[inputs[0]!.dims.length - 1]!;
  const total = new Float32Array(k);
  const fromGraphs = sums !== undefined && sums.length === inputs.length;
  let tokens = 0;
  inputs.forEach((t, r) => {
    const d = t.data as Float32Array;
    const n = d.length / k;
    let part: ArrayLike<number>;
    if (fromGraphs) part = sums[r]!;
    else {
      const p = new Float64Array(k);
      for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) p[c]! += Math.abs(d[i * k + c]!);
      part = p;
    }
    for (let c = 0; c < k; c++) total[c] = total[c]! + Math.fround(part[c]!);
    tokens += rowsPerRun ? rowsPerRun(n) : n;
  });
  return { xMean: total.map((v) => v / tokens), tokens };
}

/** The sequences of a cached `[B, T, K]` input, one `[1, T, K]` view each (no copy). */
function sequencesOf(t: RawTensor): RawTensor[] {
  const [b, seq, k] = t.dims as [number, number, number];
  const data = t.data as Float32Array;
  return Array.from({ length: b }, (_, i) => ({ type: t.type, data: data.subarray(i * seq * k, (i + 1) * seq * k), dims: [1, seq, k] }));
}
