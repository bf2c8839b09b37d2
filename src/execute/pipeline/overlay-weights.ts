/**
 * A checkpoint's weights with some Linear weights replaced (the layer a
 * modifier has just quantized or smoothed), for the propagation pass: the
 * layer graph is rebuilt from it so the next layer sees the modified
 * layer's outputs. Fused expert tensors with any replaced expert are hidden,
 * so layer builders read every expert one by one (replaced or sliced from
 * the fused tensor).
 */
import { toFloat32 } from '../dtypes.js';
import type { DenseMatrix } from '../forward/dequantize.js';
import type { Bf16Matrix } from '../forward/ops.js';
import { WeightReader } from '../forward/weights.js';
import type { FusedExpertsParam } from '../types.js';
import { readWeight, resolveWeight } from '../weight-source.js';

/** {@link WeightReader} with replaced Linear weights (see the module comment). */
export class OverlayWeights extends WeightReader {
  private readonly hidden = new Set<string>();

  constructor(
    base: WeightReader,
    private readonly replaced: ReadonlyMap<string, DenseMatrix>,
    private readonly fused: readonly FusedExpertsParam[],
  ) {
    super(base.index, base.dtype);
    for (const f of fused) if ([...replaced.keys()].some((m) => m.startsWith(`${f.expertsModule}.`))) for (const g of fused) if (g.expertsModule === f.expertsModule) this.hidden.add(g.tensor);
  }

  override has(name: string): boolean {
    return !this.hidden.has(name) && super.has(name);
  }

  override hasLinear(module: string): boolean {
    return this.replaced.has(module) || super.hasLinear(module) || resolveWeight(this.index, module, this.fused) !== null;
  }

  override async linear(module: string): Promise<DenseMatrix> {
    const r = this.replaced.get(module);
    if (r) return r;
    if (super.hasLinear(module)) return super.linear(module);
    const src = resolveWeight(this.index, module, this.fused);
    if (!src || (src.dtype !== 'BF16' && src.dtype !== 'F16' && src.dtype !== 'F32')) return super.linear(module);
    return { data: toFloat32(await readWeight(src), src.dtype), rows: src.shape[0], cols: src.shape[1] };
  }

  override async linearWeight(module: string): Promise<DenseMatrix | Bf16Matrix> {
    return this.replaced.has(module) || !super.hasLinear(module) ? this.linear(module) : super.linearWeight(module);
  }
}
