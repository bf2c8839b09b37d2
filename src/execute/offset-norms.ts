/**
 * Zero-centred ("offset") RMSNorms scale by `1 + weight` (Gemma, Qwen3-Next,
 * Qwen3.5). llm-compressor's `oneshot` swaps them for plain norms holding
 * `1 + weight` while its modifiers run (`norm_calibration_context`, so that
 * smoothing divides the real scale) and writes `weight' = scale - 1` back,
 * each step rounded to the weight's dtype: a bf16 weight is saved as
 * `bf16(bf16(1 + w) - 1)`, which moves small weights. apply writes them the
 * same way, whatever the recipe.
 */
import { bf16Bytes, f16Bytes, roundBf16, roundF16, toFloat32 } from './dtypes.js';
import { classOf, paramsOf, type ModuleTree } from '../model/module-tree.js';

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

/** An offset norm's weight after the round trip `(1 + w) → scale - 1`, each step in its dtype; raw bytes in, raw bytes out. */
export function roundTripOffsetNorm(bytes: Uint8Array, dtype: 'BF16' | 'F16' | 'F32'): Uint8Array {
  const w = toFloat32(bytes, dtype);
  const round = dtype === 'BF16' ? roundBf16 : dtype === 'F16' ? roundF16 : Math.fround;
  const out = w.map((x) => round(Math.fround(round(Math.fround(1 + x)) - 1)));
  if (dtype === 'BF16') return bf16Bytes(out);
  if (dtype === 'F16') return f16Bytes(out);
  return new Uint8Array(out.buffer);
}
