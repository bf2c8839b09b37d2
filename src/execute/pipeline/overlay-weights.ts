/**
 * A checkpoint's weights with some Linear weights replaced (the layer a
 * modifier has just quantized or smoothed), for the propagation pass: the
 * layer graph is rebuilt from it so the next layer sees the modified
 * layer's outputs — and, stacked, a whole model a transform (SmoothQuant)
 * changed, for the modifiers after it. Fused expert tensors with any replaced expert are hidden,
 * so layer builders read every expert one by one (replaced or sliced from
 * the fused tensor).
 */
import { toFloat32 } from '../dtypes.js';
import type { DenseMatrix } from '../forward/dequantize.js';
import type { Bf16Matrix } from '../forward/ops.js';
import { WeightReader } from '../forward/weights.js';
import type { FusedExpertsParam, SolvedWeight } from '../types.js';
import { fusedEntry, inMemoryName, readWeight, resolveWeight } from '../weight-source.js';

/** Weights a modifier changed: Linear weights by module, 1-D tensors (norm weights) by tensor name. */
export interface WeightChanges {
  readonly linears: ReadonlyMap<string, DenseMatrix>;
  readonly vectors: ReadonlyMap<string, Float32Array>;
}

/** No change. */
export const NO_CHANGES: WeightChanges = { linears: new Map(), vectors: new Map() };

/** {@link WeightReader} with replaced Linear weights and vectors (see the module comment). */
export class OverlayWeights extends WeightReader {
  private readonly hidden = new Set<string>();
  private readonly replaced: ReadonlyMap<string, DenseMatrix>;
  private readonly vectors: ReadonlyMap<string, Float32Array>;

  constructor(
    private readonly base: WeightReader,
    changes: WeightChanges,
    private readonly fused: readonly FusedExpertsParam[],
  ) {
    super(base.index, base.dtype, base.names);
    this.replaced = changes.linears;
    this.vectors = changes.vectors;
    for (const f of fused) {
      if (![...this.replaced.keys()].some((m) => m.startsWith(`${f.expertsModule}.`))) continue;
      // Hidden under the name the checkpoint stores it by (GraniteMoE's `input_linear.weight`).
      for (const g of fused) if (g.expertsModule === f.expertsModule) this.hidden.add(fusedEntry(base.index, g)?.name ?? g.tensor);
    }
  }

  // The checkpoint's vectors are read by the base reader, so it holds the load dtype.
  override get loadedAs(): 'bfloat16' | 'float16' | null {
    return this.base.loadedAs;
  }

  override set loadedAs(dtype: 'bfloat16' | 'float16' | null) {
    this.base.loadedAs = dtype;
  }

  override get changed(): boolean {
    return this.replaced.size > 0 || this.vectors.size > 0 || this.base.changed;
  }

  override has(name: string): boolean {
    return this.vectors.has(name) || (!this.hidden.has(name) && this.base.has(name));
  }

  override replacement(module: string): DenseMatrix | undefined {
    // Modifiers key their changes by plan names; a mixtral checkpoint in its original layout is read by stored names.
    return this.replaced.get(module) ?? this.replaced.get(inMemoryName(module)) ?? this.base.replacement(module);
  }

  override vector(name: string): Promise<Float32Array> {
    const v = this.vectors.get(name);
    return v ? Promise.resolve(v) : this.base.vector(name);
  }

  override async optionalVector(name: string): Promise<Float32Array | undefined> {
    return this.has(name) ? this.vector(name) : undefined;
  }

  override hasLinear(module: string): boolean {
    return this.replacement(module) !== undefined || this.base.hasLinear(module) || resolveWeight(this.index, module, this.fused) !== null;
  }

  override async linear(module: string): Promise<DenseMatrix> {
    const r = this.replacement(module);
    if (r) return r;
    if (this.base.hasLinear(module)) return this.base.linear(module);
    const src = resolveWeight(this.index, module, this.fused);
    if (!src || (src.dtype !== 'BF16' && src.dtype !== 'F16' && src.dtype !== 'F32')) return this.base.linear(module);
    return { data: toFloat32(await readWeight(src), src.dtype), rows: src.shape[0], cols: src.shape[1] };
  }

  override async linearWeight(module: string): Promise<DenseMatrix | Bf16Matrix> {
    return this.replacement(module) !== undefined || !this.base.hasLinear(module) ? this.linear(module) : this.base.linearWeight(module);
  }
}

/**
 * GPTQ's solved weights as changes for the stages after it (a smoothing
 * modifier later in the recipe runs on the quantized model): each module's
 * dequantized values, in the model dtype, exact.
 */
export function solvedChanges(base: WeightReader, solved: ReadonlyMap<string, SolvedWeight>, fused: readonly FusedExpertsParam[]): WeightChanges {
  const linears = new Map<string, DenseMatrix>();
  for (const [module, w] of solved) {
    const src = resolveWeight(base.index, module, fused);
    if (!src) throw new Error(`${module}: GPTQ solved a weight the checkpoint does not hold`);
    linears.set(module, { data: toFloat32(w.bytes, w.dtype), rows: src.shape[0], cols: src.shape[1] });
  }
  return { linears, vectors: new Map() };
}
