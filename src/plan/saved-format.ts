/**
 * The compressed-tensors format a scheme is saved in, inferred exactly as
 * `compressors/format.py` does: the first compressor, in priority order,
 * that can compress it. An explicit `format` on the scheme wins.
 */
import type { QuantizationArgs, QuantizationScheme } from '../ir/types.js';

/** Infers the saved format of one scheme. */
export function savedFormat(scheme: QuantizationScheme): string {
  if (scheme.format) return scheme.format;
  const w = scheme.weights;
  if (!w) return 'dense';
  const acts = scheme.input_activations;
  if (isFloat(w, 4) && w.group_size === 32) return 'mxfp4-pack-quantized';
  if (isFloat(w, 8) && w.group_size === 32 && w.scale_dtype === 'torch.uint8') return 'mxfp8-quantized';
  if (isFloat(w, 4) && w.group_size === 16) return 'nvfp4-pack-quantized';
  if (w.type === 'int' && acts) return 'int-quantized';
  if (w.type === 'int' && w.num_bits >= 1 && w.num_bits <= 8 && (!acts || acts.type !== 'float')) return 'pack-quantized';
  if (w.type === 'float' && acts) return 'float-quantized';
  return 'naive-quantized';
}

function isFloat(a: QuantizationArgs, bits: number): boolean {
  return a.type === 'float' && a.num_bits === bits;
}

/** The model-level format: the single format in use, or `mixed-precision`. */
export function modelFormat(formats: Iterable<string>): string {
  const set = new Set(formats);
  if (set.size === 0) return 'dense';
  return set.size === 1 ? [...set][0]! : 'mixed-precision';
}
