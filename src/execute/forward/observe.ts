/**
 * Observers inside the layer graphs: when a graph is built for calibration,
 * the inputs of its Linear modules are reduced to min/max statistics in the
 * graph itself and returned as extra outputs, so calibration moves a few
 * floats per module out of onnxruntime instead of activations.
 *
 * Output naming (read back by {@link parseObserverOutput}):
 * `min:<m1>,<m2>…` / `max:…` — scalars shared by modules with the same input
 * (q/k/v, gate/up), or where a graph packs them, entries of one output;
 * `amax:<m1>,<m2>…` — the same for inputs read only symmetrically, one
 * `max |x|` standing for `min = −absmax`, `max = absmax`; `emin:<experts module>|<projection>|<offset>` /
 * `emax:…` — vectors, one value per expert `<experts module>.<offset + i>.<projection>`.
 *
 * With Hessians on (GPTQ), each observed input `x` also yields `Σ xxᵀ` over
 * its tokens, accumulated in float32 inside the graph:
 * `hess:<m1>,<m2>…` — `[K, K]`, one per distinct input (q/k/v share one);
 * `ehess:<experts module>|<p1>,<p2>|<offset>` — `[E, K, K]`, one per expert;
 * `hessall:<experts module>|<p1>,<p2>` — `[K, K]` shared by every expert of
 * the module (all experts see the same block input);
 * `hessrows:<m1>,…|<r0>` — `[R, K − r0]`, rows `[r0, r0 + R)` of `Σ xxᵀ`
 * from column `r0` on (the upper triangle, by row blocks), for an input
 * split by columns across graphs: each graph returns its slice as
 * `join:<m1>,…` `[N, Kₛ]` and {@link joinedHessian}'s graphs run on the
 * slices side by side (see split-mlp.ts).
 *
 * With channels on (SmoothQuant), `cmin:<m1>,<m2>…` / `cmax:…` — `[K]`, the
 * per-channel min and max of an input over its tokens.
 *
 * With inputs on (AWQ), `x:<m1>,<m2>…` — the input itself, `[..., K]`: what
 * the grid search replays through the modules' parent; for experts seeing
 * every token, `x:<experts module>.*.<p1>,…` — the block input `[N, K]` all
 * experts share — and `xe:<experts module>|<projection>|<offset>` — per
 * expert inputs `[E, N, K]`. Each comes with its `Σ|x|` per channel over the
 * run's tokens (AWQ's `x_mean` numerator, summed in float64 on the device
 * rather than in JavaScript): `xabs:<key>` `[K]` and `xeabs:<key>` `[E, K]`.
 */
import { GraphBuilder, OnnxType } from '../onnx/graph-builder.js';

/**
 * Which tokens an expert's observers see: `all` (every token, the
 * `calibrate_all_experts` rewrite) or `routed` (only tokens routed to it).
 */
export type ExpertObservation = 'all' | 'routed';

/**
 * What a calibration graph observes: min/max always, the inputs' Hessians
 * when `hessians` is set (GPTQ), per-channel min/max of the inputs when
 * `channels` is set (SmoothQuant's activation ranges).
 */
export interface Observation {
  readonly experts: ExpertObservation;
  readonly hessians: boolean;
  readonly channels?: boolean;
  /**
   * Return each observed input itself (AWQ caches its parents' inputs): all
   * of them, or those of the modules the predicate accepts (experts asked as
   * `<experts module>.*.<projection>`), so that inputs no mapping reads do not
   * cross the bus.
   */
  readonly inputs?: boolean | ((module: string) => boolean);
  /**
   * Return only the `Σ|x|` sums of the inputs of the modules the predicate
   * accepts (AWQ's `x_mean`, when its search recomputes the inputs on the
   * device instead of caching them): loopable statistics.
   */
  readonly inputSums?: (module: string) => boolean;
  /**
   * Observe only the inputs of the modules it accepts (a key shared by
   * several modules, q/k/v, is observed when one of them is accepted); every
   * input when unset. A calibration run asks only for what its recipe
   * quantizes, so a graph computes no statistics nobody reads, and a layer
   * whose post-RoPE keys nobody observes may rotate them inside the fused
   * attention kernel (llama-layer.ts).
   */
  readonly observes?: (module: string) => boolean;
  /**
   * Take min/max only of the inputs of the modules it accepts (every observed
   * input when unset); the other statistics still follow {@link observes}.
   * GPTQ needs every solved module's Hessian but the ranges only of inputs
   * its scheme quantizes statically.
   */
  readonly minmax?: (module: string) => boolean;
  /**
   * Modules whose input range is read only as `max(|min|, |max|)` (symmetric
   * static schemes: FP8, NVFP4's global scale, symmetric integers, the kv
   * cache). Where every module of an input is one, the graph reduces `|x|`
   * once instead of reducing `x` twice, and returns `min = −absmax`,
   * `max = absmax`: the same scales, one reduction fewer (`Abs` is exact in
   * any dtype; the host negates it, so no kernel does).
   */
  readonly absmax?: (module: string) => boolean;
}

/** Whether `mode` returns the input of any of `modules`. */
function returnsInput(mode: Observation, modules: readonly string[]): boolean {
  const want = mode.inputs;
  return want === true || (typeof want === 'function' && modules.some(want));
}

/** The output that holds a graph's min/max scalars, where they are packed ({@link packMinMax}). */
export const PACKED_MINMAX = 'packed:minmax';

/** A statistic in {@link PACKED_MINMAX}: its output name, and how many outputs the graph had declared before it (its place among them). */
export interface PackedStatistic {
  readonly name: string;
  readonly before: number;
}

const packed = new WeakMap<GraphBuilder, (PackedStatistic & { readonly value: string })[]>();

/**
 * Makes graph `g` gather its per-tensor min/max statistics into one output
 * ({@link finishPackedMinMax}) instead of an output each: a graph of many
 * layers has hundreds, and each output is a copy from the device and a
 * tensor made for it at every run.
 */
export function packMinMax(g: GraphBuilder): void {
  packed.set(g, []);
}

/**
 * Declares graph `g`'s packed statistics as output {@link PACKED_MINMAX}
 * (`[n, 1]`) and returns them (`min:<key>`, `max:<key>`, `amax:<key>`) in its order;
 * none, and no output, where nothing was observed.
 */
export function finishPackedMinMax(g: GraphBuilder): PackedStatistic[] {
  const list = packed.get(g) ?? [];
  packed.delete(g);
  if (list.length === 0) return [];
  g.output(g.op('Concat', list.map((s) => s.value), { axis: 0 }), PACKED_MINMAX, OnnxType.float, [list.length, 1]);
  return list.map(({ name, before }) => ({ name, before }));
}

/**
 * A run's outputs (named as declared, in `declared` order) with
 * {@link PACKED_MINMAX} replaced by the scalar outputs it stands for, each
 * where it would have been declared: the order an unpacked graph returns.
 */
export function unpackMinMax<T extends { readonly data: unknown }>(
  result: Readonly<Record<string, T>>,
  declared: readonly string[],
  stats: readonly PackedStatistic[],
  scalar: (value: number) => T,
): [string, T][] {
  const data = result[PACKED_MINMAX]?.data as Float32Array | undefined;
  if (data === undefined) return Object.entries(result);
  if (data.length !== stats.length) throw new Error(`packed statistics: ${data.length} values for ${stats.length} names`);
  const out: [string, T][] = [];
  let s = 0;
  declared.forEach((name, i) => {
    for (; s < stats.length && stats[s]!.before <= i; s++) out.push([stats[s]!.name, scalar(data[s]!)]);
    if (name !== PACKED_MINMAX && result[name] !== undefined) out.push([name, result[name]!]);
  });
  for (; s < stats.length; s++) out.push([stats[s]!.name, scalar(data[s]!)]);
  return out;
}

/** How observers are asked for: the experts' token mode alone (min/max), or a full {@link Observation}. */
export type ObserveOption = ExpertObservation | Observation;

const enabled = new WeakMap<GraphBuilder, Observation>();

/** Turns observers on for graph `g`. */
export function enableObservers(g: GraphBuilder, option: ObserveOption): void {
  enabled.set(g, typeof option === 'string' ? { experts: option, hessians: false } : option);
}

/**
 * `Σ|x|` over axis `axis` (the tokens), accumulated in float64 and rounded
 * once to float32: the graph's float32 sums in their reduction order flip
 * AWQ grid choices that llm-compressor's (torch's cascaded float32 sums)
 * keep.
 */
function absSum(g: GraphBuilder, x: string, axis: number): string {
  const wide = g.op('Cast', [g.op('Abs', [x])], { to: OnnxType.double });
  return g.op('Cast', [g.op('ReduceSum', [wide, g.i64([axis])], { keepdims: 0 })], { to: OnnxType.float });
}

/** `xᵀx` of `x [..., K]` flattened to `[N, K]` (per expert for `[E, N, K]`). */
function gram(g: GraphBuilder, x: string, perExpert: boolean): string {
  if (perExpert) return g.op('MatMul', [g.op('Transpose', [x], { perm: [0, 2, 1] }), x]);
  const flat = g.op('Flatten', [x], { axis: -1 });
  return g.op('MatMul', [g.op('Transpose', [flat], { perm: [1, 0] }), flat]);
}

/**
 * Observes `x` as the input of `modules` (one min and one max over the whole
 * tensor). `part` (e.g. `#3`) names one slice of an input observed in
 * several graphs; the slices' statistics merge into the module's.
 */
export function observeInput(g: GraphBuilder, modules: readonly string[], x: string, part = ''): void {
  const mode = enabled.get(g);
  if (!mode || (mode.observes && !modules.some(mode.observes))) return;
  const key = modules.join(',') + part;
  if (!mode.minmax || modules.some(mode.minmax)) {
    const pack = packed.get(g);
    const absmax = mode.absmax !== undefined && modules.every(mode.absmax);
    // `[1, 1]` whatever the input's rank where packed, so that the graph's statistics concatenate.
    const source = absmax ? g.op('Abs', [x]) : x;
    const t = pack ? g.op('Flatten', [source], { axis: -1 }) : source;
    const keepdims = pack ? 1 : 0;
    const stats = absmax
      ? [{ name: `amax:${key}`, value: g.op('ReduceMax', [t], { keepdims }) }]
      : [
          { name: `min:${key}`, value: g.op('ReduceMin', [t], { keepdims }) },
          { name: `max:${key}`, value: g.op('ReduceMax', [t], { keepdims }) },
        ];
    const before = g.outputList.length;
    for (const { name, value } of stats) {
      if (pack) pack.push({ name, before, value });
      else g.output(value, name, OnnxType.float, []);
    }
  }
  if (mode.channels && !part && !modules.some((m) => m.endsWith('_states'))) {
    const flat = g.op('Flatten', [x], { axis: -1 });
    g.output(g.op('ReduceMin', [flat, g.i64([0])], { keepdims: 0 }), `cmin:${key}`, OnnxType.float, ['k']);
    g.output(g.op('ReduceMax', [flat, g.i64([0])], { keepdims: 0 }), `cmax:${key}`, OnnxType.float, ['k']);
  }
  if (!part && !modules.some((m) => m.endsWith('_states'))) {
    const whole = returnsInput(mode, modules);
    if (whole) g.output(x, `x:${key}`, OnnxType.float, ['batch', 'seq', 'k']);
    if (whole || (mode.inputSums !== undefined && modules.some(mode.inputSums))) g.output(absSum(g, g.op('Flatten', [x], { axis: -1 }), 0), `xabs:${key}`, OnnxType.float, ['k']);
  }
  if (!mode.hessians || modules.some((m) => m.endsWith('_states'))) return;
  // A Hessian needs the whole input: a slice goes out as it is, and joinedHessian's graphs take the slices side by side.
  if (part) g.output(g.op('Flatten', [x], { axis: -1 }), `join:${modules.join(',')}`, OnnxType.float, ['n', 'k']);
  else g.output(gram(g, x, false), `hess:${key}`, OnnxType.float, ['k', 'k']);
}

/** Whether the graph's calibration names `module` among what it observes (not merely observes everything). */
export function observesNamed(g: GraphBuilder, module: string): boolean {
  const mode = enabled.get(g);
  return mode?.observes !== undefined && mode.observes(module) && (mode.minmax === undefined || mode.minmax(module));
}

/** Whether graph `g` takes the min/max of `module`'s input (observers on, and the module among those asked for). */
export function observesInput(g: GraphBuilder, module: string): boolean {
  const mode = enabled.get(g);
  return mode !== undefined && (mode.observes === undefined || mode.observes(module)) && (mode.minmax === undefined || mode.minmax(module));
}

/** Whether graphs built with `option` accumulate Hessians. */
export function observesHessians(option: ObserveOption | undefined): boolean {
  return typeof option === 'object' && option.hessians;
}

/**
 * Observer graphs over an input split by columns across graphs: the
 * executor concatenates every graph's `input` output `[N, Kₛ]` in graph
 * order into `x [N, K]` and runs each graph on it, once per batch.
 */
export interface JoinedObserver {
  readonly input: string;
  readonly graphs: readonly { readonly name: string; readonly bytes: Uint8Array }[];
}

/**
 * The Hessian of `modules`' input `x [N, k]` split across graphs, as graphs
 * of `rows` rows each: block `[r0, r1)` computes `x[:, r0:r1]ᵀ · x[:, r0:]`,
 * the upper triangle from its diagonal block on (half the products of the
 * full `xᵀx`; the store mirrors it). Each entry is the same float32 dot
 * product over the tokens as one graph's `hess:` output; the row blocks
 * bound what one run returns to `rows · k` floats instead of `k²`.
 */
export function joinedHessian(modules: readonly string[], k: number, rows: number): JoinedObserver {
  const key = modules.join(',');
  const graphs: { name: string; bytes: Uint8Array }[] = [];
  for (let r0 = 0; r0 < k; r0 += rows) {
    const r1 = Math.min(r0 + rows, k);
    const g = new GraphBuilder();
    const x = g.input('x', OnnxType.float, ['n', k]);
    const block = g.op('Slice', [x, g.i64([r0]), g.i64([r1]), g.i64([1])]);
    const rest = r0 === 0 ? x : g.op('Slice', [x, g.i64([r0]), g.i64([k]), g.i64([1])]);
    g.output(g.op('MatMul', [g.op('Transpose', [block], { perm: [1, 0] }), rest]), `hessrows:${key}|${r0}`, OnnxType.float, [r1 - r0, k - r0]);
    graphs.push({ name: `hessrows_${r0}`, bytes: g.build(`hessian_rows_${r0}`) });
  }
  return { input: `join:${key}`, graphs };
}

/**
 * Observes expert inputs. `x` is either shared by all experts (`[N, D]`, the
 * block input) or per expert (`[E, N, D]`); `mask [N, E]` is 1 where a token
 * is routed to an expert. In `routed` mode only routed tokens count (an
 * expert without tokens reports +inf / -inf).
 */
export function observeExperts(g: GraphBuilder, expertsModule: string, projections: readonly string[], x: string, perExpert: boolean, mask: string, experts: number, offset = 0): void {
  const observation = enabled.get(g);
  if (observation === undefined) return;
  const mode = observation.experts;
  if (observation.hessians) expertHessians(g, expertsModule, projections, x, perExpert, mask, mode, offset);
  if (returnsInput(observation, projections.map((p) => `${expertsModule}.*.${p}`)) && mode === 'all') {
    if (perExpert)
      for (const proj of projections) {
        g.output(x, `xe:${expertsModule}|${proj}|${offset}`, OnnxType.float, ['e', 'n', 'k']);
        g.output(absSum(g, x, 1), `xeabs:${expertsModule}|${proj}|${offset}`, OnnxType.float, ['e', 'k']);
      }
    else if (offset === 0) {
      const key = projections.map((p) => `${expertsModule}.*.${p}`).join(',');
      g.output(x, `x:${key}`, OnnxType.float, ['n', 'k']);
      g.output(absSum(g, x, 0), `xabs:${key}`, OnnxType.float, ['k']);
    }
  }
  for (const proj of projections) {
    const key = `${expertsModule}|${proj}|${offset}`;
    if (mode === 'all' && !perExpert) {
      const ones = g.f32(new Array<number>(experts).fill(1), [experts]);
      g.output(g.op('Mul', [g.op('ReduceMin', [x], { keepdims: 0 }), ones]), `emin:${key}`, OnnxType.float, [experts]);
      g.output(g.op('Mul', [g.op('ReduceMax', [x], { keepdims: 0 }), ones]), `emax:${key}`, OnnxType.float, [experts]);
      continue;
    }
    // Per token (and expert): [N] or [E, N]; then per expert over its tokens.
    const tokMin = g.op('ReduceMin', [x, g.i64([-1])], { keepdims: 0 });
    const tokMax = g.op('ReduceMax', [x, g.i64([-1])], { keepdims: 0 });
    const byExpert = (t: string): string => (perExpert ? g.op('Transpose', [t], { perm: [1, 0] }) : g.op('Unsqueeze', [t, g.i64([-1])]));
    if (mode === 'all') {
      g.output(g.op('ReduceMin', [byExpert(tokMin), g.i64([0])], { keepdims: 0 }), `emin:${key}`, OnnxType.float, [experts]);
      g.output(g.op('ReduceMax', [byExpert(tokMax), g.i64([0])], { keepdims: 0 }), `emax:${key}`, OnnxType.float, [experts]);
      continue;
    }
    const routed = g.op('Greater', [mask, g.f32(0)]);
    g.output(g.op('ReduceMin', [g.op('Where', [routed, byExpert(tokMin), g.f32(Infinity)]), g.i64([0])], { keepdims: 0 }), `emin:${key}`, OnnxType.float, [experts]);
    g.output(g.op('ReduceMax', [g.op('Where', [routed, byExpert(tokMax), g.f32(-Infinity)]), g.i64([0])], { keepdims: 0 }), `emax:${key}`, OnnxType.float, [experts]);
  }
}

/**
 * Hessian outputs of expert inputs (see the module comment): one shared
 * `[K, K]` when every expert sees the same block input (emitted by the graph
 * holding expert 0 only), else one per expert, tokens masked to the routed
 * ones in `routed` mode.
 */
function expertHessians(g: GraphBuilder, expertsModule: string, projections: readonly string[], x: string, perExpert: boolean, mask: string, mode: ExpertObservation, offset: number): void {
  const projs = projections.join(',');
  if (mode === 'all' && !perExpert) {
    if (offset === 0) g.output(gram(g, x, false), `hessall:${expertsModule}|${projs}`, OnnxType.float, ['k', 'k']);
    return;
  }
  let xe = x;
  // [N, E] → [E, N, 1]: zero the tokens not routed to each expert.
  if (mode === 'routed') xe = g.op('Mul', [x, g.op('Unsqueeze', [g.op('Transpose', [mask], { perm: [1, 0] }), g.i64([-1])])]);
  else if (!perExpert) xe = g.op('Unsqueeze', [x, g.i64([0])]);
  g.output(gram(g, xe, true), `ehess:${expertsModule}|${projs}|${offset}`, OnnxType.float, ['e', 'k', 'k']);
}

/** One statistic read back from a graph output: module → value. */
export interface ObservedValue {
  readonly stat: 'min' | 'max';
  readonly module: string;
  readonly value: number;
}

/** Decodes an observer output (see the module comment); [] for other outputs. */
export function parseObserverOutput(name: string, data: Float32Array): ObservedValue[] {
  const colon = name.indexOf(':');
  if (colon < 0) return [];
  const kind = name.slice(0, colon);
  const key = name.slice(colon + 1);
  if (kind === 'min' || kind === 'max' || kind === 'amax') {
    // A slice's statistics (`#<part>`) merge into the module's.
    const modules = key.replace(/#\d+$/, '').split(',');
    if (kind !== 'amax') return modules.map((module) => ({ stat: kind, module, value: data[0]! }));
    return modules.flatMap((module) => [{ stat: 'min' as const, module, value: -data[0]! }, { stat: 'max' as const, module, value: data[0]! }]);
  }
  if (kind === 'emin' || kind === 'emax') {
    const [experts, proj, offset] = key.split('|') as [string, string, string];
    return Array.from(data, (value, e) => ({ stat: kind === 'emin' ? 'min' : 'max', module: `${experts}.${Number(offset) + e}.${proj}`, value }));
  }
  return [];
}

/**
 * Per-channel min/max of `x` as the input of `modules` (SmoothQuant's
 * activation ranges), without the scalar and Hessian statistics of
 * {@link observeInput}: for expert projections, whose input scales come
 * from the expert observers, but whose smooth layer's output `x` is one
 * range for all of them.
 */
export function observeChannels(g: GraphBuilder, modules: readonly string[], x: string): void {
  if (!enabled.get(g)?.channels) return;
  const key = modules.join(',');
  const flat = g.op('Flatten', [x], { axis: -1 });
  g.output(g.op('ReduceMin', [flat, g.i64([0])], { keepdims: 0 }), `cmin:${key}`, OnnxType.float, ['k']);
  g.output(g.op('ReduceMax', [flat, g.i64([0])], { keepdims: 0 }), `cmax:${key}`, OnnxType.float, ['k']);
}
