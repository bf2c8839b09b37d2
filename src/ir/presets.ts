/**
 * The preset schemes of compressed-tensors 0.18 (`quant_scheme.py`), as data.
 * `presetScheme(name, targets)` mirrors `preset_name_to_scheme`: the name is
 * upper-cased and unlisted QuantizationArgs fields take their defaults.
 */
import { resolveQuantArgs } from './quant-args.js';
import type { QuantizationArgs, QuantizationScheme } from './types.js';

type Partial = Readonly<Record<string, unknown>>;
interface PresetSpec {
  readonly weights?: Partial;
  readonly input_activations?: Partial;
}

const FP8_E4M3 = 'float8_e4m3fn';

/** `_int_wnam(w)`: int weights, symmetric, group 128, static. */
function intWeights(bits: number): Partial {
  return { num_bits: bits, type: 'int', symmetric: true, strategy: 'group', group_size: 128, dynamic: false };
}

/** Dynamic per-token int activations. */
function intTokenActivations(bits: number): Partial {
  return { num_bits: bits, type: 'int', symmetric: true, strategy: 'token', dynamic: true };
}

const W8A8: PresetSpec = {
  weights: { num_bits: 8, type: 'int', symmetric: true, strategy: 'channel', dynamic: false },
  input_activations: intTokenActivations(8),
};

const NVFP4_WEIGHTS: Partial = {
  num_bits: 4, type: 'float', symmetric: true, strategy: 'tensor_group', group_size: 16, dynamic: false,
  scale_dtype: FP8_E4M3, zp_dtype: FP8_E4M3,
};

function mxWeights(bits: number): Partial {
  return { num_bits: bits, type: 'float', symmetric: true, strategy: 'group', group_size: 32, dynamic: false, scale_dtype: 'uint8', zp_dtype: 'uint8' };
}

function mxActivations(bits: number): Partial {
  return { num_bits: bits, type: 'float', symmetric: true, strategy: 'group', group_size: 32, dynamic: true, scale_dtype: 'uint8', zp_dtype: 'uint8' };
}

function intFamily(): Record<string, PresetSpec> {
  const out: Record<string, PresetSpec> = {};
  for (let w = 2; w <= 8; w++) {
    for (const a of [4, 8, 16]) {
      if (w > a) continue;
      if (w === 8 && a === 8) continue;
      out[`W${w}A${a}`] = a === 16 ? { weights: intWeights(w) } : { weights: intWeights(w), input_activations: intTokenActivations(a) };
    }
  }
  return out;
}

const PRESETS: Readonly<Record<string, PresetSpec>> = {
  UNQUANTIZED: {},
  W4A16_ASYM: { weights: { ...intWeights(4), symmetric: false } },
  W8A8,
  INT8: W8A8,
  W4AFP8: {
    weights: intWeights(4),
    input_activations: { num_bits: 8, type: 'float', symmetric: true, strategy: 'token', dynamic: true },
  },
  FP8: {
    weights: { num_bits: 8, type: 'float', symmetric: true, strategy: 'tensor', dynamic: false },
    input_activations: { num_bits: 8, type: 'float', symmetric: true, strategy: 'tensor', dynamic: false, observer: 'static_minmax' },
  },
  FP8_DYNAMIC: {
    weights: { num_bits: 8, type: 'float', symmetric: true, strategy: 'channel', dynamic: false },
    input_activations: { num_bits: 8, type: 'float', symmetric: true, strategy: 'token', dynamic: true },
  },
  FP8_BLOCK: {
    weights: { num_bits: 8, type: 'float', symmetric: true, strategy: 'block', block_structure: [128, 128], dynamic: false },
    input_activations: { num_bits: 8, type: 'float', symmetric: true, strategy: 'group', group_size: 128, dynamic: true },
  },
  NVFP4A16: { weights: NVFP4_WEIGHTS },
  NVFP4: {
    weights: NVFP4_WEIGHTS,
    input_activations: { ...NVFP4_WEIGHTS, dynamic: 'local', observer: 'static_minmax' },
  },
  MXFP4A16: { weights: mxWeights(4) },
  MXFP4: { weights: mxWeights(4), input_activations: mxActivations(4) },
  MXFP8A16: { weights: mxWeights(8) },
  MXFP8: { weights: mxWeights(8), input_activations: mxActivations(8) },
  ...intFamily(),
};

/** Every preset name, in compressed-tensors' `PRESET_SCHEMES` order. */
export const PRESET_NAMES: readonly string[] = Object.keys(PRESETS);

/** `is_preset_scheme`: case-insensitive. */
export function isPreset(name: string): boolean {
  return Object.hasOwn(PRESETS, name.toUpperCase());
}

/** `preset_name_to_scheme(name, targets)`; undefined for an unknown name. */
export function presetScheme(name: string, targets: readonly string[]): QuantizationScheme | undefined {
  const spec = PRESETS[name.toUpperCase()];
  if (!spec) return undefined;
  const args = (p: Partial | undefined): QuantizationArgs | null => (p ? resolveQuantArgs(p) : null);
  return {
    targets: [...targets],
    weights: args(spec.weights),
    input_activations: args(spec.input_activations),
    output_activations: null,
    format: null,
  };
}
