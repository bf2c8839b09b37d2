/**
 * The dtype a tensor that no modifier touches is written in. llm-compressor
 * loads the model with transformers in the checkpoint's dtype (`config.json`'s
 * `dtype`, what `dtype="auto"` picks), which casts every floating tensor to
 * it on load, and saves what it loaded: a float32 norm in a bf16 checkpoint
 * comes back bf16. The exception is what a model class keeps in float32 for
 * bf16 and fp16 loads (`_keep_in_fp32_modules_strict`), which comes back
 * float32 even where the checkpoint stored it narrower.
 */
import { bf16Bytes, f16Bytes, roundBf16InPlace, roundF16, toFloat32, type SafetensorsDtype } from './dtypes.js';

/** The floating dtypes transformers casts between on load. */
export type CastDtype = 'BF16' | 'F16' | 'F32';

/**
 * Parameter names each model class keeps in float32 for bf16 and fp16 loads
 * (transformers' `_keep_in_fp32_modules_strict`, matched as a dotted
 * component of the name): the MoE routers' score-correction bias.
 */
const KEPT_IN_FLOAT32: ReadonlyMap<string, readonly string[]> = new Map([
  ['deepseek_v3', ['e_score_correction_bias']],
  ['glm4_moe', ['e_score_correction_bias']],
  ['glm4_moe_lite', ['e_score_correction_bias']],
  ['glm_moe_dsa', ['e_score_correction_bias']],
]);

const TORCH_DTYPES: Readonly<Record<string, CastDtype>> = { bfloat16: 'BF16', float16: 'F16', float32: 'F32' };

/** The dtype transformers loads a checkpoint in (`dtype`, or `torch_dtype`, of the config or its text config); null when it names none. */
export function loadDtype(config: Readonly<Record<string, unknown>>): CastDtype | null {
  const text = typeof config.text_config === 'object' && config.text_config !== null ? (config.text_config as Record<string, unknown>) : {};
  const named = config.dtype ?? config.torch_dtype ?? text.dtype ?? text.torch_dtype;
  return typeof named === 'string' ? (TORCH_DTYPES[named] ?? null) : null;
}

/**
 * Whether model class `modelType` keeps parameter `name` in float32 whatever
 * the load dtype; without a model type, whether any class does.
 */
export function keptInFloat32(name: string, modelType?: string): boolean {
  const parts = name.split('.');
  const lists = modelType === undefined ? [...KEPT_IN_FLOAT32.values()] : [KEPT_IN_FLOAT32.get(modelType) ?? []];
  return lists.some((keys) => keys.some((k) => parts.includes(k)));
}

/**
 * The dtype llm-compressor saves an untouched tensor `name` stored as
 * `stored` in: itself for non-floating tensors and where the load dtype is
 * unknown.
 */
export function savedDtype(name: string, stored: SafetensorsDtype, modelType: string, load: CastDtype | null): SafetensorsDtype {
  if (load === null || (stored !== 'BF16' && stored !== 'F16' && stored !== 'F32')) return stored;
  return load !== 'F32' && keptInFloat32(name, modelType) ? 'F32' : load;
}

/** `bytes` of a `from` tensor as `to`, rounded to nearest even as torch casts. */
export function castBytes(bytes: Uint8Array, from: CastDtype, to: CastDtype): Uint8Array {
  if (from === to) return bytes;
  const values = toFloat32(bytes, from);
  if (to === 'F32') return new Uint8Array(values.buffer);
  if (to === 'BF16') return bf16Bytes(roundBf16InPlace(values));
  for (let i = 0; i < values.length; i++) values[i] = roundF16(values[i]!);
  return f16Bytes(values);
}
