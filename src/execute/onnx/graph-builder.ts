/**
 * Builds ONNX ModelProto bytes for the small element-wise graphs the executor
 * runs. Only what those graphs need: typed inputs/outputs with symbolic or
 * fixed dims, constant initializers, nodes with int/float/ints attributes
 * and subgraph bodies (Scan).
 * Node output names are generated, so graphs read like expressions.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ProtoWriter, type ByteArena, type FileBytes } from './proto-writer.js';

export type { FileBytes };

/** ONNX TensorProto.DataType codes used by the executor. */
export const OnnxType = {
  float: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int32: 6,
  int64: 7,
  double: 11,
  bool: 9,
  float16: 10,
  uint32: 12,
  bfloat16: 16,
  float8e4m3fn: 17,
} as const;

/** One of the ONNX element types in {@link OnnxType}. */
export type OnnxElemType = (typeof OnnxType)[keyof typeof OnnxType];

/** An attribute value: integer, `{ float }`, a list of integers, or a subgraph (`{ graph }`, a loop body). */
export type AttrValue = number | { readonly float: number } | readonly number[] | { readonly graph: GraphBuilder; readonly name: string };

/** A dimension: a fixed size or a symbolic name. */
export type Dim = number | string;

/** Opset the graphs are written for (ORT 1.29 runs it on CPU and CUDA). */
export const OPSET = 21;
const IR_VERSION = 10;

/** The operator domain of onnxruntime's contrib operators. */
const CONTRIB_DOMAIN = 'com.microsoft';

/** `dims` null declares no shape (a loop-carried value whose shape the first iteration sets). */
function valueInfo(name: string, elemType: OnnxElemType, dims: readonly Dim[] | null): ProtoWriter {
  const tensorType = new ProtoWriter().int(1, elemType);
  if (dims) {
    const shape = new ProtoWriter();
    for (const d of dims) {
      const dim = new ProtoWriter();
      if (typeof d === 'number') dim.int(1, d);
      else dim.string(2, d);
      shape.message(1, dim);
    }
    tensorType.message(2, shape);
  }
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, name).message(2, type);
}

function attribute(name: string, value: AttrValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if (typeof value === 'number') return w.int(3, value).int(20, 2);
  if (Array.isArray(value)) return w.packedInts(8, value as number[]).int(20, 7);
  if ('graph' in value) return w.message(6, value.graph.graphProto(value.name)).int(20, 5);
  return w.float(2, (value as { float: number }).float).int(20, 1);
}

/** A weight a graph takes as an input instead of a constant (see {@link GraphBuilder.feedWeights}). */
export interface WeightFeed {
  readonly name: string;
  readonly elemType: OnnxElemType;
  readonly dims: readonly number[];
  /** The value the run feeds: bytes in memory, or where they lie in a file (read when fed). */
  readonly raw: Uint8Array | FileBytes;
}

/**
 * The weights of a graph (and of its loop bodies) that enter as graph
 * inputs: the graph's bytes then hold only its structure, so same-shaped
 * layers build the same bytes and one session serves them all, each run
 * feeding its own layer's weights.
 */
export class WeightFeeds {
  readonly entries: WeightFeed[] = [];
}

/** A node as added: its operator, the names it reads (its inputs, and the outer-scope names of its subgraphs) and writes. */
export interface GraphNode {
  readonly name: string;
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
  /** Set for onnxruntime's contrib operators. */
  readonly domain?: string;
  readonly refs: readonly string[];
}

/** What a {@link GraphRewrite} knows of the graph besides its nodes. */
export interface GraphContext {
  /** The element type of a graph input, constant or fed weight; undefined for any other name (node outputs, outer-scope values). */
  typeOf(name: string): OnnxElemType | undefined;
  /** Names whose value must keep its node and type: graph outputs, and what subgraphs read by name. */
  readonly pinned: ReadonlySet<string>;
  /** A new value name. */
  freshValue(): string;
  /** A new node name. */
  freshNode(): string;
}

/** Rewrites a graph's nodes when it is written (precision.ts narrows low-precision graphs); the result must stay in topological order. */
export type GraphRewrite = (nodes: readonly GraphNode[], graph: GraphContext) => GraphNode[];

/**
 * `nodes` with each output's `Identity` folded into the node that makes its
 * value, where nothing else reads that value: the node writes the output
 * itself, one device copy less per output and run (per iteration, in a loop
 * body).
 */
function foldOutputCopies(nodes: readonly GraphNode[], outputs: ReadonlySet<string>): readonly GraphNode[] {
  const reads = new Map<string, number>();
  const made = new Set<string>();
  for (const n of nodes) {
    for (const name of [...n.inputs, ...n.refs]) reads.set(name, (reads.get(name) ?? 0) + 1);
    for (const o of n.outputs) made.add(o);
  }
  const renamed = new Map<string, string>();
  const folded = new Set<GraphNode>();
  for (const n of nodes) {
    const [x] = n.inputs;
    if (n.opType !== 'Identity' || n.domain || x === undefined || !outputs.has(n.outputs[0]!) || !made.has(x) || outputs.has(x) || reads.get(x) !== 1) continue;
    renamed.set(x, n.outputs[0]!);
    folded.add(n);
  }
  if (folded.size === 0) return nodes;
  return nodes.filter((n) => !folded.has(n)).map((n) => (n.outputs.some((o) => renamed.has(o)) ? { ...n, outputs: n.outputs.map((o) => renamed.get(o) ?? o) } : n));
}

/**
 * A model as a graph builds it: its bytes, or its bytes with the folder of
 * the files its constants reference (ONNX external data: onnxruntime reads
 * them from there when it creates the session, see {@link BuildOptions}).
 */
export type ModelBytes = Uint8Array | { readonly bytes: Uint8Array; readonly externalData: string };

/** A constant as added: its bytes in memory, or where they lie in a file. */
interface Initializer {
  readonly name: string;
  readonly elemType: OnnxElemType;
  readonly dims: readonly number[];
  readonly raw: Uint8Array | FileBytes;
}

/** How {@link GraphBuilder.build} writes a model. */
export interface BuildOptions {
  /** Write the model into the arena's memory (valid until the arena's next use). */
  readonly arena?: ByteArena;
  /**
   * A folder (a real path): constants lying in files in it are written as
   * references to those files (ONNX external data: the file's name, offset
   * and length), not copied into the model, and onnxruntime reads them from
   * the files when it creates the session, which must then be told the
   * folder ({@link ModelBytes}).
   */
  readonly externalData?: string;
}

const realFiles = new Map<string, { readonly folder: string; readonly name: string }>();

/** The real folder and name of `file` (a checkpoint shard may be a link into a cache's blobs). */
function realFile(file: string): { readonly folder: string; readonly name: string } {
  let r = realFiles.get(file);
  if (!r) {
    const path = realpathSync(file);
    r = { folder: dirname(path), name: basename(path) };
    realFiles.set(file, r);
  }
  return r;
}

function initializerProto(t: Initializer, externalData: string | undefined): ProtoWriter {
  const w = new ProtoWriter().packedInts(1, t.dims).int(2, t.elemType).string(8, t.name);
  if (t.raw instanceof Uint8Array || externalData === undefined) return w.bytes(9, t.raw);
  const real = realFile(t.raw.file);
  if (real.folder !== externalData) return w.bytes(9, t.raw);
  const entry = (key: string, value: string): ProtoWriter => new ProtoWriter().string(1, key).string(2, value);
  // TensorProto.external_data (13) and data_location (14) EXTERNAL.
  return w.message(13, entry('location', real.name)).message(13, entry('offset', String(t.raw.offset))).message(13, entry('length', String(t.raw.byteLength))).int(14, 1);
}

function nodeProto(n: GraphNode): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.opType);
  if (n.domain) w.string(7, n.domain);
  for (const [k, v] of Object.entries(n.attrs)) w.message(5, attribute(k, v));
  return w;
}

/**
 * Accumulates nodes, inputs, outputs and constants of one ONNX graph. Parts
 * are kept as unencoded writers and constants by reference, so
 * {@link build} copies each constant's bytes once, into the model bytes.
 */
export class GraphBuilder {
  private nodes: GraphNode[] = [];
  private inits: Initializer[] = [];
  private inputs: ProtoWriter[] = [];
  private inputNames: string[] = [];
  private inputTypes: OnnxElemType[] = [];
  private outputs: ProtoWriter[] = [];
  private outputNames: string[] = [];
  private counter = 0;
  /** See {@link pruneUnused}. */
  private prune = false;
  /** Whether this graph or a body it holds has a contrib node (the model then imports that domain). */
  private usesContrib = false;
  /** See {@link feedWeights}. */
  private feeds?: WeightFeeds;
  /** See {@link rewriteWith}. */
  private rewrite?: GraphRewrite;
  /** See {@link hoistInto}. */
  private outer?: GraphBuilder;

  /** `prefix` starts every generated name: a subgraph's names must not clash with its parent's. */
  constructor(private readonly prefix = '') {}

  /**
   * Leaves out of the built graph every node and constant that no output
   * depends on (onnxruntime runs every node it is given): for a graph built
   * from a larger one (a layer built only up to a value it computes).
   */
  pruneUnused(): void {
    this.prune = true;
  }

  /** Makes {@link build} (and a parent writing this graph as a subgraph) write the nodes `rewrite` makes of this graph's nodes. */
  rewriteWith(rewrite: GraphRewrite): void {
    this.rewrite = rewrite;
  }

  /**
   * Makes {@link weight} declare inputs recorded in `feeds` rather than
   * constants; `feeds` may be shared with the graph's loop bodies, whose
   * weights then become inputs of the graph that {@link build}s them.
   */
  feedWeights(feeds: WeightFeeds): void {
    this.feeds = feeds;
  }

  /**
   * Makes {@link invariant} build into `outer`, the graph that runs this one
   * as a loop body: what depends only on the fed weights is then computed
   * once per run instead of once per iteration, and the body reads it as an
   * outer-scope value. `outer` must feed the same weights.
   */
  hoistInto(outer: GraphBuilder): void {
    this.outer = outer;
  }

  /** A value that reads none of this graph's inputs (fed weights, constants): built into the graph {@link hoistInto} named, else into this one. */
  invariant(build: (g: GraphBuilder) => string): string {
    return build(this.outer ?? this);
  }

  /** Whether {@link weight} makes inputs (see {@link feedWeights}). */
  get feedsWeights(): boolean {
    return this.feeds !== undefined;
  }

  /**
   * A weight tensor: a constant ({@link constRaw}), or, when this graph
   * feeds its weights, the name of an input the run supplies. The name is
   * generated like any other, so it does not depend on which layer the
   * weight belongs to.
   */
  weight(elemType: OnnxElemType, dims: readonly number[], raw: Uint8Array | FileBytes): string {
    if (!this.feeds) return this.constRaw(elemType, dims, raw);
    const name = `${this.prefix}w${this.counter++}`;
    this.feeds.entries.push({ name, elemType, dims, raw });
    return name;
  }

  /** Names this graph reads but does not define: the outer-scope values a subgraph uses. */
  freeNames(): Set<string> {
    // A pruned body reads only what its kept nodes read, so the outer graph need not make the rest.
    const nodes = this.prune ? this.kept().nodes : this.nodes;
    const defined = new Set<string>([...this.inputNames, ...this.inits.map((i) => i.name), ...nodes.flatMap((n) => n.outputs)]);
    const free = new Set<string>();
    for (const n of nodes) for (const name of [...n.inputs, ...n.refs]) if (name !== '' && !defined.has(name)) free.add(name);
    return free;
  }

  /** Declares a graph input and returns its name (`dims` null: any shape). */
  input(name: string, elemType: OnnxElemType, dims: readonly Dim[] | null): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    this.inputNames.push(name);
    this.inputTypes.push(elemType);
    return name;
  }

  /** Declares `value` as graph output `name` (an Identity node renames it; `dims` null: any shape). */
  output(value: string, name: string, elemType: OnnxElemType, dims: readonly Dim[] | null): void {
    this.node('Identity', [value], {}, [name]);
    this.outputs.push(valueInfo(name, elemType, dims));
    this.outputNames.push(name);
  }

  /** The graph outputs declared so far, in order. */
  get outputList(): readonly string[] {
    return this.outputNames;
  }

  /** Names `value` `name` too (an Identity node) without making it a graph output. */
  alias(value: string, name: string): void {
    this.node('Identity', [value], {}, [name]);
  }

  /**
   * Declares existing value `value` (a graph input: a loop body's condition)
   * as a graph output under its own name, with no node: an Identity would be
   * placed on the device and copy the condition there and back every
   * iteration.
   */
  passOutput(value: string, elemType: OnnxElemType, dims: readonly Dim[]): void {
    this.outputs.push(valueInfo(value, elemType, dims));
    this.outputNames.push(value);
  }

  /**
   * A constant tensor from raw little-endian bytes, in memory or where they
   * lie in a file (a checkpoint tensor, then read straight into the model
   * bytes). Large `raw` is referenced, not copied, and a file not read until
   * {@link build}: neither may change before.
   */
  constRaw(elemType: OnnxElemType, dims: readonly number[], raw: Uint8Array | FileBytes): string {
    const name = `${this.prefix}c${this.counter++}`;
    this.inits.push({ name, elemType, dims, raw });
    return name;
  }

  /** A float32 constant. */
  f32(values: number | readonly number[], dims?: readonly number[]): string {
    const arr = Float32Array.from(typeof values === 'number' ? [values] : values);
    return this.constRaw(OnnxType.float, dims ?? (typeof values === 'number' ? [] : [arr.length]), new Uint8Array(arr.buffer));
  }

  /** An int64 constant (shapes, axes, pack multipliers). */
  i64(values: number | readonly number[], dims?: readonly number[]): string {
    const arr = BigInt64Array.from((typeof values === 'number' ? [values] : values).map((v) => BigInt(v)));
    return this.constRaw(OnnxType.int64, dims ?? (typeof values === 'number' ? [] : [arr.length]), new Uint8Array(arr.buffer));
  }

  /** Adds a node; returns its first output name. */
  op(opType: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>> = {}): string {
    const out = `${this.prefix}v${this.counter++}`;
    this.node(opType, inputs, attrs, [out]);
    return out;
  }

  /** Adds a node with `count` outputs (TopK, Split); returns their names. */
  opMulti(opType: string, inputs: readonly string[], count: number, attrs: Readonly<Record<string, AttrValue>> = {}): string[] {
    const outs = Array.from({ length: count }, () => `${this.prefix}v${this.counter++}`);
    this.node(opType, inputs, attrs, outs);
    return outs;
  }

  /**
   * Adds a node of onnxruntime's own operators (domain `com.microsoft`, the
   * fused kernels such as GroupQueryAttention) with `count` outputs; an
   * empty input name leaves an optional input out.
   */
  contribOp(opType: string, inputs: readonly string[], count: number, attrs: Readonly<Record<string, AttrValue>> = {}): string[] {
    const outs = Array.from({ length: count }, () => `${this.prefix}v${this.counter++}`);
    this.node(opType, inputs, attrs, outs, CONTRIB_DOMAIN);
    this.usesContrib = true;
    return outs;
  }

  private node(opType: string, inputs: readonly string[], attrs: Readonly<Record<string, AttrValue>>, outputs: readonly string[], domain?: string): void {
    const refs: string[] = [];
    for (const v of Object.values(attrs)) {
      if (typeof v === 'object' && v !== null && 'graph' in v) {
        refs.push(...v.graph.freeNames());
        if (v.graph.usesContrib) this.usesContrib = true;
      }
    }
    this.nodes.push({ name: `${this.prefix}n${this.counter++}`, opType, inputs, outputs, attrs, ...(domain ? { domain } : {}), refs });
  }

  /** This graph's nodes as written: rewritten where {@link rewriteWith} asks. */
  private written(): readonly GraphNode[] {
    if (!this.rewrite) return this.nodes;
    const types = new Map<string, OnnxElemType>();
    this.inputNames.forEach((name, i) => types.set(name, this.inputTypes[i]!));
    for (const t of this.inits) types.set(t.name, t.elemType);
    for (const f of this.feeds?.entries ?? []) types.set(f.name, f.elemType);
    const pinned = new Set(this.outputNames);
    for (const n of this.nodes) for (const r of n.refs) pinned.add(r);
    return this.rewrite(this.nodes, {
      typeOf: (name) => types.get(name),
      pinned,
      freshValue: () => `${this.prefix}v${this.counter++}`,
      freshNode: () => `${this.prefix}n${this.counter++}`,
    });
  }

  /** The nodes and constants the outputs depend on (all of them unless {@link pruneUnused}); nodes are in topological order. */
  private kept(): { nodes: readonly GraphNode[]; inits: readonly Initializer[] } {
    const nodes = foldOutputCopies(this.written(), new Set(this.outputNames));
    if (!this.prune) return { nodes, inits: this.inits };
    const needed = new Set(this.outputNames);
    const keep = new Array<boolean>(nodes.length).fill(false);
    for (let i = nodes.length - 1; i >= 0; i--) {
      const n = nodes[i]!;
      if (!n.outputs.some((o) => needed.has(o))) continue;
      keep[i] = true;
      for (const name of [...n.inputs, ...n.refs]) needed.add(name);
    }
    return { nodes: nodes.filter((_, i) => keep[i]), inits: this.inits.filter((t) => needed.has(t.name)) };
  }

  /**
   * The GraphProto (a model's graph, or a subgraph attribute); a model's
   * graph (`top`) declares the fed weights its nodes and bodies read as inputs.
   */
  graphProto(name: string, top = false, externalData?: string): ProtoWriter {
    const g = new ProtoWriter();
    const { nodes, inits } = this.kept();
    for (const n of nodes) g.message(1, nodeProto(n));
    g.string(2, name);
    for (const t of inits) g.message(5, initializerProto(t, externalData));
    const read = new Set([...nodes.flatMap((n) => [...n.inputs, ...n.refs]), ...this.outputNames]);
    // A model's graph declares only the inputs something reads (a layer whose attention is fused never reads the mask), so nothing unread is fed; a loop body keeps its signature.
    this.inputs.forEach((i, k) => {
      if (!top || read.has(this.inputNames[k]!)) g.message(11, i);
    });
    if (top && this.feeds) for (const f of this.feeds.entries) if (read.has(f.name)) g.message(11, valueInfo(f.name, f.elemType, f.dims));
    for (const o of this.outputs) g.message(12, o);
    return g;
  }

  /**
   * The folder holding most of this graph's constants that lie in files (by
   * bytes, their real paths): what {@link BuildOptions.externalData} can
   * reference; undefined when no constant lies in a file.
   */
  fileFolder(): string | undefined {
    const bytes = new Map<string, number>();
    for (const t of this.inits) {
      if (t.raw instanceof Uint8Array) continue;
      const { folder } = realFile(t.raw.file);
      bytes.set(folder, (bytes.get(folder) ?? 0) + t.raw.byteLength);
    }
    return [...bytes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  }

  /**
   * The model as a runtime takes it, its constants lying in files referenced
   * where they lie (the folder holding most of them, {@link fileFolder}):
   * no copy of a checkpoint's tensors into the bytes, no parse of them.
   * `QUANTC_EXTERNAL_WEIGHTS=0` copies them in, for comparisons.
   */
  model(name: string, arena?: ByteArena): ModelBytes {
    const externalData = process.env.QUANTC_EXTERNAL_WEIGHTS === '0' ? undefined : this.fileFolder();
    const bytes = this.build(name, { arena, externalData });
    return externalData === undefined ? bytes : { bytes, externalData };
  }

  /** Serialized ModelProto (see {@link BuildOptions}). */
  build(name: string, options: BuildOptions = {}): Uint8Array {
    const { arena, externalData } = options;
    const g = this.graphProto(name, true, externalData);
    const model = new ProtoWriter().int(1, IR_VERSION).string(2, 'quantc').message(7, g).message(8, new ProtoWriter().string(1, '').int(2, OPSET));
    if (this.usesContrib) model.message(8, new ProtoWriter().string(1, CONTRIB_DOMAIN).int(2, 1));
    return model.finish(arena);
  }
}
