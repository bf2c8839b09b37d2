/**
 * Zero-centred ("offset") RMSNorms scale by `1 + weight` (Gemma, Qwen3-Next,
 * Qwen3.5). llm-compressor's `oneshot` swaps them for plain norms holding
 * `1 + weight` while its modifiers run (`norm_calibration_context`, so that
 * smoothing divides the real scale) and writes `weight' = scale - 1` back,
 * each step rounded to the weight's dtype: a bf16 weight is saved as
 * `bf16(bf16(1 + w) - 1)`, which moves small weights. apply writes them the
 * same way, whatever the recipe, and calibrates with them: the model
 * llm-compressor calibrates, and the one it saves, scales by the rounded
 * `1 + weight'`.
 */
import { bf16Bytes, f16Bytes, roundBf16, roundF16, toFloat32 } from './dtypes.js';
import { classOf, paramsOf, type ModuleTree } from '../model/module-tree.js';
import type { WeightReader } from './forward/weights.js';
import { OverlayWeights } from './pipeline/overlay-weights.js';
import type { FusedExpertsParam } from './types.js';

/** Norm classes llm-compressor registers as offset norms (`CalibrationOffsetNorm`). */
export const OFFSET_NORM_CLASSES: ReadonlySet<string> = new Set(['GemmaRMSNorm', 'Gemma2RMSNorm', 'Gemma3RMSNorm', 'Qwen3NextRMSNorm', 'Qwen3_5RMSNorm', 'Qwen3_5MoeRMSNorm']);

/** The weight tensors of every offset norm in `tree`. */
export function offsetNormTensors(tree: ModuleTree): string[] {
  const out: string[] = [];
  for (let i = 0; i < tree.names.length; i++) {
    if (OFFSET_NORM_CLASSES.has(classOf(tree, i).name) && paramsOf(tree, i).some((p) => p.name === 'weight')) out.push(`${tree.names[i]}.weight`);
  }
  return out;
}

/** Offset-norm weights `w` (values of dtype `dtype`) after the round trip `(1 + w) → scale - 1`, each step rounded to `dtype`. */
export function roundTripOffsetValues(w: Float32Array, dtype: 'BF16' | 'F16' | 'F32'): Float32Array {
  const round = dtype === 'BF16' ? roundBf16 : dtype === 'F16' ? roundF16 : Math.fround;
  return w.map((x) => round(Math.fround(round(Math.fround(1 + x)) - 1)));
}

/** {@link roundTripOffsetValues} on raw bytes. */
export function roundTripOffsetNorm(bytes: Uint8Array, dtype: 'BF16' | 'F16' | 'F32'): Uint8Array {
  const out = roundTripOffsetValues(toFloat32(bytes, dtype), dtype);
  if (dtype === 'BF16') return bf16Bytes(out);
  if (dtype === 'F16') return f16Bytes(out);
  return new Uint8Array(out.buffer);
}

/**
 * The model's weights with its offset norms as llm-compressor calibrates and
 * saves them (for the calibration forward passes of apply).
 */
export async function withRoundedOffsetNorms(w: WeightReader, names: readonly string[], fused: readonly FusedExpertsParam[]): Promise<WeightReader> {
  const vectors = new Map<string, Float32Array>();
  for (const name of names) {
    const dtype = w.index.tensors.get(name)?.dtype;
    if (dtype === 'BF16' || dtype === 'F16' || dtype === 'F32') vectors.set(name, roundTripOffsetValues(await w.vector(name), dtype));
  }
  return new OverlayWeights(w, { linears: new Map(), vectors }, fused);
}
