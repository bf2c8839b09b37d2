/**
 * A checkpoint read for a served-model forward pass: weights as the plain
 * reader gives them (dequantized as compressed-tensors decompresses them),
 * plus, per Linear, the fake quantization of its input that the
 * checkpoint's `quantization_config` asks for (static scales read from the
 * checkpoint), and per attention the kv-cache fake quantization of its
 * post-RoPE keys and its values (`k_scale`/`v_scale`).
 */
import { attachInputQuantizer, type InputPart, type InputQuantizer, type SliceQuantizer } from '../forward/input-quantizer.js';
import { readAsFloat32, type DenseMatrix } from '../forward/dequantize.js';
import type { Bf16Matrix } from '../forward/ops.js';
import { WeightReader } from '../forward/weights.js';
import type { ForwardModel } from '../forward/executor.js';
import { describeArgs, groupOf, readActivationConfig, type ActivationArgs, type ActivationConfig } from './activation-args.js';
import { fakeQuantize, unsupportedReason, type StoredScales } from './fake-quant.js';

/** A quantized activation the forward pass cannot simulate; the message is user-facing. */
export class SimulationUnsupportedError extends Error {}

/** What a simulated run quantized: module (or attention) → description of its arguments. */
export interface SimulationSummary {
  /** Linear module → its input arguments, e.g. `FP8 dynamic per-token`. */
  readonly inputs: ReadonlyMap<string, string>;
  /** Attention module → its kv-cache arguments. */
  readonly kvCache: ReadonlyMap<string, string>;
}

/** Router modules are not `Linear` in transformers 5 (a `Linear` target does not match them). */
function classOf(module: string): string {
  return /\.(mlp|block_sparse_moe)\.gate$/.test(module) ? 'Router' : 'Linear';
}

/** Reads a checkpoint's weights with its activation fake quantization attached (see the module comment). */
export class SimulatingWeights extends WeightReader {
  private readonly viaLinearWeight = new Set<string>();
  /** Modules whose inputs a split MLP or an expert block quantizes itself (see {@link inputQuantizer}). */
  private readonly sliced = new Set<string>();
  private readonly inputs = new Map<string, string>();
  private readonly kv = new Map<string, string>();

  constructor(
    base: WeightReader,
    readonly activations: ActivationConfig,
  ) {
    super(base.index, base.dtype, base.names);
    for (const g of activations.groups) {
      if (g.output) throw new SimulationUnsupportedError(`config group ${g.name} quantizes output activations, which cannot be simulated yet`);
    }
  }

  /** What was simulated so far (every layer built). */
  summary(): SimulationSummary {
    return { inputs: this.inputs, kvCache: this.kv };
  }

  private async stored(prefix: string): Promise<StoredScales> {
    const read = async (name: string): Promise<Float32Array | undefined> => {
      const e = this.index.tensors.get(`${prefix}${name}`);
      return e ? readAsFloat32(e) : undefined;
    };
    const global = await read('global_scale');
    return { scale: await read('scale'), zeroPoint: await read('zero_point'), globalScale: global?.[0] };
  }

  private async quantizer(what: string, args: ActivationArgs, prefix: string): Promise<InputQuantizer> {
    const stored = await this.stored(prefix);
    const why = unsupportedReason(args, stored.scale !== undefined);
    if (why) throw new SimulationUnsupportedError(`${what}: cannot simulate ${why}`);
    // NVFP4's local scales live under the stored global scale.
    if (args.dynamic === 'local' && stored.globalScale === undefined) throw new SimulationUnsupportedError(`${what}: cannot simulate local scales without ${prefix}global_scale in the checkpoint`);
    return (g, x) => fakeQuantize(g, x, args, stored);
  }

  /** The fake quantization of Linear `module`'s input, if its config group quantizes inputs. */
  private async moduleQuantizer(module: string): Promise<InputQuantizer | undefined> {
    const args = groupOf(this.activations, module, classOf(module))?.input;
    if (!args) return undefined;
    const q = await this.quantizer(module, args, `${module}.input_`);
    this.inputs.set(module, describeArgs(args));
    return q;
  }

  /** Simulated weights are fake-quantized copies, never the files' bytes. */
  override get changed(): boolean {
    return true;
  }

  /**
   * The input quantizer of a Linear read whole by {@link linear} (an MLP
   * split across graphs, an expert). A slice of the input's columns can be
   * quantized on its own only when its scales do not span the row: static
   * per-tensor scales, or groups (the slices then keep whole groups).
   */
  override async inputQuantizer(module: string, part: InputPart): Promise<SliceQuantizer | undefined> {
    const args = groupOf(this.activations, module, classOf(module))?.input;
    if (!args) return undefined;
    const grouped = args.dynamic !== false && (args.strategy === 'group' || args.strategy === 'tensor_group');
    if (part === 'column-slice' && args.dynamic !== false && !grouped) {
      throw new SimulationUnsupportedError(`${module}: its input is split across graphs (an MLP larger than one graph) and its ${describeArgs(args)} scales span the whole row, which cannot be simulated yet`);
    }
    // An expert quantizes every token, not only those routed to it: the same for scales per token, group or stored tensor.
    if (part === 'all-tokens' && args.dynamic !== false && args.strategy === 'tensor') {
      throw new SimulationUnsupportedError(`${module}: an expert's ${describeArgs(args)} input scale depends on the tokens routed to it, which cannot be simulated yet`);
    }
    const quantize = await this.moduleQuantizer(module);
    this.sliced.add(module);
    return quantize && { quantize, align: grouped ? args.groupSize! : 1 };
  }

  /** The kv-cache fake quantization of attention `attention`'s keys (`k`) or values (`v`), if the checkpoint has a kv_cache_scheme. */
  override async cacheQuantizer(attention: string, which: 'k' | 'v'): Promise<InputQuantizer | undefined> {
    const args = this.activations.kvCache;
    if (!args) return undefined;
    const q = await this.quantizer(`${attention} kv cache`, args, `${attention}.${which}_`);
    this.kv.set(attention, describeArgs(args));
    return q;
  }

  override async linearWeight(module: string): Promise<DenseMatrix | Bf16Matrix> {
    this.viaLinearWeight.add(module);
    try {
      const w = await super.linearWeight(module);
      const args = groupOf(this.activations, module, classOf(module))?.input;
      const group = args && args.dynamic !== false && (args.strategy === 'group' || args.strategy === 'tensor_group') ? args.groupSize : null;
      if (group && w.cols % group !== 0) throw new SimulationUnsupportedError(`${module}: its ${w.cols} input columns are not a multiple of the activation group size ${group}`);
      const q = await this.moduleQuantizer(module);
      if (q) attachInputQuantizer(w, q);
      return w;
    } finally {
      this.viaLinearWeight.delete(module);
    }
  }

  /** A weight read whole by a graph that did not ask for its input quantizer would run with unquantized inputs: refused. */
  override async linear(module: string): Promise<DenseMatrix> {
    if (!this.viaLinearWeight.has(module) && !this.sliced.has(module) && groupOf(this.activations, module, classOf(module))?.input) {
      throw new SimulationUnsupportedError(`${module}: the forward executor reads this weight where its quantized input cannot be simulated yet`);
    }
    return super.linear(module);
  }
}

/** The quantization the served model applies: none (weights only) or activations and kv cache too. */
export type Simulation = 'weights' | 'activations';

/**
 * `model` as it will be served: reading its weights through
 * {@link SimulatingWeights} when its config has a `quantization_config`
 * (weights-only otherwise: nothing to simulate); with the reader, for the
 * summary of what was simulated.
 */
export function servedModel(model: ForwardModel): { model: ForwardModel; weights: SimulatingWeights | null } {
  const config = readActivationConfig(model.raw);
  if (!config) return { model, weights: null };
  const weights = new SimulatingWeights(model.weights, config);
  return { model: model.withWeights(weights), weights };
}
