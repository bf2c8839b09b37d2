/**
 * Quantizes one unit of the weight pass (a module, or NVFP4's fused
 * siblings sharing a global scale) from its raw weights to the tensors
 * compressed-tensors writes for it. Used on the main thread and, for the
 * CPU loops, in worker threads (`loop-worker.ts`), with the same results.
 */
import { groupOrderedTensors } from './gptq/group-order.js';
import type { GraphRuntime } from './runtime.js';
import { fusedGlobalScale, groupedWeight, observerSeesNonFinite, observesInGraph, observeWeight, quantizeObserved, quantizeObservedStack, quantizeWeight, statsFinite, type WeightStats } from './rtn/quantize-weight.js';
import type { WeightKernel } from './rtn/weight-kernel.js';
import type { SolvedWeight } from './types.js';

/** One module of a unit: where its tensors go and how it is quantized. */
export interface UnitModule {
  readonly name: string;
  /** The name its tensors are written under. */
  readonly writeAs: string;
  readonly kernel: WeightKernel;
  /** The weight an algorithm quantized (GPTQ), written with the scales of the original weight. */
  readonly solved?: SolvedWeight;
}

/** A unit's tensors, named and in write order. */
export type UnitOutput = { readonly name: string; readonly bytes: Uint8Array }[];

/** A weight holds NaN or infinity; the message is user-facing. */
export class NonFiniteWeightError extends Error {}

/** Whether raw float weights hold a NaN or an infinity (all exponent bits set). */
function hasNonFinite(raw: Uint8Array, dtype: 'BF16' | 'F16' | 'F32'): boolean {
  if (dtype === 'F32') {
    const u = raw.byteOffset % 4 === 0 ? new Uint32Array(raw.buffer, raw.byteOffset, raw.byteLength >>> 2) : new Uint32Array(raw.slice().buffer);
    for (let i = 0; i < u.length; i++) if ((u[i]! & 0x7f800000) === 0x7f800000) return true;
    return false;
  }
  const mask = dtype === 'BF16' ? 0x7f80 : 0x7c00;
  const u = raw.byteOffset % 2 === 0 ? new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength >>> 1) : new Uint16Array(raw.slice().buffer);
  for (let i = 0; i < u.length; i++) if ((u[i]! & mask) === mask) return true;
  return false;
}

/**
 * Quantizes single-module units of one stack key (see `stackKey`) in one
 * graph run: `raws[i]` is `modules[i]`'s weight; one result per unit.
 */
export async function quantizeStack(rt: GraphRuntime, modules: readonly UnitModule[], raws: readonly Uint8Array[]): Promise<{ out: UnitOutput; bytesRead: number }[]> {
  for (const [i, m] of modules.entries()) {
    if (hasNonFinite(raws[i]!, m.kernel.dtype)) throw new NonFiniteWeightError(`${m.name}: the weight holds non-finite values (NaN or infinity); its scales would be written non-finite`);
  }
  const tensors = await quantizeObservedStack(rt, modules[0]!.kernel, raws);
  return modules.map((m, i) => ({ out: m.kernel.outputs.map((o) => ({ name: `${m.writeAs}.${o.suffix}`, bytes: tensors[i]!.get(o.suffix)! })), bytesRead: raws[i]!.byteLength }));
}

/** Quantizes a unit's modules from their raw weights (`raws[i]` for `modules[i]`). */
export async function quantizeUnit(rt: GraphRuntime, modules: readonly UnitModule[], raws: readonly Uint8Array[]): Promise<{ out: UnitOutput; bytesRead: number }> {
  let bytesRead = 0;
  const out: UnitOutput = [];
  const loaded: { m: UnitModule; grouped: ReturnType<typeof groupedWeight>; stats: WeightStats }[] = [];
  for (const [i, m] of modules.entries()) {
    const raw = raws[i]!;
    bytesRead += raw.byteLength;
    if (m.solved?.gIdx) {
      for (const [suffix, bytes] of groupOrderedTensors(m.kernel, m.solved)) out.push({ name: `${m.writeAs}.${suffix}`, bytes });
      continue;
    }
    const nonFinite = `${m.name}: the weight holds non-finite values (NaN or infinity); its scales would be written non-finite`;
    const original = groupedWeight(rt, m.kernel, raw);
    const seen = observerSeesNonFinite(rt, m.kernel, original);
    if (!seen && hasNonFinite(raw, m.kernel.dtype)) throw new NonFiniteWeightError(nonFinite);
    if (!m.solved && observesInGraph(rt, m.kernel)) {
      // One graph, one upload: observed, scaled and quantized on the device.
      const tensors = await quantizeObserved(rt, m.kernel, original);
      for (const o of m.kernel.outputs) out.push({ name: `${m.writeAs}.${o.suffix}`, bytes: tensors.get(o.suffix)! });
      continue;
    }
    const stats = await observeWeight(rt, m.kernel, original);
    if (seen && !statsFinite(stats)) throw new NonFiniteWeightError(nonFinite);
    // A solved weight is an exact multiple of the original weight's scales: quantizing it with them recovers its codes.
    loaded.push({ m, grouped: m.solved ? groupedWeight(rt, m.kernel, m.solved.bytes) : original, stats });
  }
  if (loaded.length === 0) return { out, bytesRead };
  const kernel = modules[0]!.kernel;
  const globalScale = kernel.kind === 'nvfp4' ? fusedGlobalScale(loaded.map((l) => l.stats), kernel) : undefined;
  for (const { m, grouped, stats } of loaded) {
    const tensors = await quantizeWeight(rt, m.kernel, grouped, stats, globalScale);
    for (const o of m.kernel.outputs) out.push({ name: `${m.writeAs}.${o.suffix}`, bytes: tensors.get(o.suffix)! });
  }
  return { out, bytesRead };
}
