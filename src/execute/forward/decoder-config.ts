/**
 * The numbers the forward executor needs from a decoder-only `config.json`,
 * with the defaults of transformers' config classes where a key is absent.
 * Reading is strict: an architecture or RoPE variant the executor cannot run
 * is an error here, before any weight is read.
 */

/** RoPE as transformers 5 computes it (`rope_parameters`, or legacy `rope_theta` / `rope_scaling`). */
export interface RopeConfig {
  readonly type: 'default' | 'linear' | 'llama3' | 'yarn' | 'longrope';
  readonly theta: number;
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxPositions: number;
  /** Rotated dimensions per head. */
  readonly dim: number;
  /** Extra mscale keys of yarn-style configs (`mscale_all_dim`), 0 when absent. */
  readonly mscaleAllDim: number;
  /** yarn: `mscale` (0 when absent), `attention_factor` (null: inferred), `beta_fast`, `beta_slow`, `truncate`. */
  readonly mscale: number;
  readonly attentionFactor: number | null;
  readonly betaFast: number;
  readonly betaSlow: number;
  readonly truncate: boolean;
  /** longrope (PhiMoE): per-frequency divisors and the cos/sin scale up to and beyond `originalMaxPositions`. */
  readonly longrope?: { readonly shortFactor: readonly number[]; readonly shortMscale: number; readonly longMscale: number };
}

/** A decoder-only model the executor can run. */
export interface DecoderConfig {
  readonly modelType: string;
  readonly vocabSize: number;
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly intermediate: number;
  readonly eps: number;
  readonly attentionBias: boolean;
  readonly mlpBias: boolean;
  readonly tieEmbeddings: boolean;
  readonly rope: RopeConfig;
  readonly dtype: 'bfloat16' | 'float16' | 'float32';
  /** Keys attend only to the last `slidingWindow` positions (mistral, mixtral; qwen models with `use_sliding_window`). */
  readonly slidingWindow: number | null;
  /** Per-layer attention kinds (`layer_types`): the window applies to `sliding_attention` layers only; null = every layer. */
  readonly layerTypes: readonly string[] | null;
  /** RMSNorms scale by `1 + weight` (zero-centred weights, qwen3_next). */
  readonly zeroCentredNorms: boolean;
  /** Norms are LayerNorms with bias (phimoe) instead of RMSNorms. */
  readonly layerNorm?: boolean;
  /** RMSNorms multiply the float32 normalization by the weight before casting down (gpt-oss), not after. */
  readonly normWeightInFloat32?: boolean;
  /** q/k/v projections clamped to ±clipQkv (olmoe `clip_qkv`). */
  readonly clipQkv?: number | null;
  /** GraniteMoE's multipliers: embeddings times `embedding_multiplier`, each residual branch times `residual_multiplier`, logits divided by `logits_scaling`. */
  readonly embeddingMultiplier?: number;
  readonly residualMultiplier?: number;
  readonly logitsScaling?: number;
  /** Attention score scale when not `head_dim ** -0.5` (granitemoe `attention_multiplier`). */
  readonly attentionScale?: number;
}

/** The config cannot be run; the message says which key and why. */
export class UnsupportedModelError extends Error {}

/** model_type values with the llama decoder layer (same modules, same math). */
export const LLAMA_LIKE: ReadonlySet<string> = new Set(['llama', 'mistral', 'qwen2', 'qwen3']);

function num(raw: Record<string, unknown>, key: string, fallback?: number): number {
  const v = raw[key];
  if (typeof v === 'number') return v;
  if ((v === undefined || v === null) && fallback !== undefined) return fallback;
  throw new UnsupportedModelError(`config.json: "${key}" must be a number${v === undefined ? ' (it is missing)' : `, not ${JSON.stringify(v)}`}`);
}

/** Reads RoPE parameters (transformers 5 `rope_parameters`, else legacy keys). */
export function readRope(raw: Record<string, unknown>, dim: number): RopeConfig {
  const params = (raw.rope_parameters ?? raw.rope_scaling ?? {}) as Record<string, unknown>;
  const type = String(params.rope_type ?? params.type ?? 'default');
  const theta = typeof params.rope_theta === 'number' ? params.rope_theta : num(raw, 'rope_theta', 10000);
  if (type !== 'default' && type !== 'linear' && type !== 'llama3' && type !== 'yarn' && !(type === 'longrope' && raw.model_type === 'phimoe')) {
    throw new UnsupportedModelError(`config.json: rope_type "${type}" is not supported by the forward executor (default, linear, llama3, yarn are; longrope for phimoe)`);
  }
  const maxPositions = num(raw, 'max_position_embeddings', 2048);
  // Phi-3.5-MoE also states longrope's original context at the top level of config.json.
  const topOriginal = type === 'longrope' && typeof raw.original_max_position_embeddings === 'number' ? raw.original_max_position_embeddings : maxPositions;
  const original = typeof params.original_max_position_embeddings === 'number' ? params.original_max_position_embeddings : topOriginal;
  const numOr = (v: unknown, fallback: number): number => (typeof v === 'number' && v !== 0 ? v : fallback);
  const partialRaw = params.partial_rotary_factor ?? raw.partial_rotary_factor;
  // Qwen3NextConfig defaults partial_rotary_factor to 0.25.
  const partial = typeof partialRaw === 'number' ? partialRaw : raw.model_type === 'qwen3_next' ? 0.25 : 1;
  return {
    type,
    theta,
    factor: typeof params.factor === 'number' ? params.factor : type === 'yarn' ? maxPositions / original : 1,
    lowFreqFactor: typeof params.low_freq_factor === 'number' ? params.low_freq_factor : 1,
    highFreqFactor: typeof params.high_freq_factor === 'number' ? params.high_freq_factor : 4,
    originalMaxPositions: original,
    dim: Math.floor(dim * partial),
    mscaleAllDim: typeof params.mscale_all_dim === 'number' ? params.mscale_all_dim : 0,
    mscale: typeof params.mscale === 'number' ? params.mscale : 0,
    attentionFactor: typeof params.attention_factor === 'number' ? params.attention_factor : null,
    betaFast: numOr(params.beta_fast, 32),
    betaSlow: numOr(params.beta_slow, 1),
    truncate: params.truncate !== false,
    ...(type === 'longrope' ? { longrope: readLongrope(params, Math.floor(dim * partial)) } : {}),
  };
}

/**
 * PhiMoE's longrope: its rotary embedding always takes the short factors
 * (it calls the initializer without a sequence length) and scales cos/sin by
 * `short_mscale`, or `long_mscale` for sequences longer than the original context.
 */
function readLongrope(params: Record<string, unknown>, dim: number): NonNullable<RopeConfig['longrope']> {
  const short = params.short_factor;
  if (!Array.isArray(short) || short.length !== dim / 2 || !short.every((x) => typeof x === 'number')) {
    throw new UnsupportedModelError(`config.json: longrope short_factor must be ${dim / 2} numbers`);
  }
  const mscale = (key: string): number => {
    const v = params[key];
    if (typeof v !== 'number') throw new UnsupportedModelError(`config.json: longrope ${key} must be a number`);
    return v;
  };
  return { shortFactor: short as number[], shortMscale: mscale('short_mscale'), longMscale: mscale('long_mscale') };
}

/** The attention window of layer `layer`, or null for full causal attention. */
export function windowOf(cfg: DecoderConfig, layer: number): number | null {
  if (cfg.slidingWindow === null) return null;
  return cfg.layerTypes === null || cfg.layerTypes[layer] === 'sliding_attention' ? cfg.slidingWindow : null;
}

/**
 * model_types whose sliding window llm-compressor's sequential pipeline does
 * not apply. Under its tracer, transformers' `create_causal_mask` /
 * `create_sliding_window_causal_mask` become leaf calls that receive a
 * config rebuilt from its public fields, without `_attn_implementation`;
 * mask creation then returns no mask, and the decoder layers attend with
 * SDPA's plain causal mask. The models listed build their mask that way
 * (`mask_function = … if self.config.sliding_window is None else …`); the
 * others (qwen2/qwen3 and their MoE, gpt-oss, llama4) build their masks
 * inside a block the tracer wraps whole, with the real config, so their
 * windows hold during calibration too.
 */
export const CALIBRATED_WITHOUT_WINDOW: ReadonlySet<string> = new Set(['mistral', 'mixtral', 'phimoe', 'qwen3_moe']);

/**
 * The window calibration leaves out, as llm-compressor's sequential
 * pipeline does (see {@link CALIBRATED_WITHOUT_WINDOW}); null when it runs
 * the model's attention as served.
 */
export function windowDroppedInCalibration(cfg: DecoderConfig): number | null {
  return CALIBRATED_WITHOUT_WINDOW.has(cfg.modelType) ? cfg.slidingWindow : null;
}

/** The sliding window of a config, or null when no layer slides (gpt-oss: 128 unless set). */
function slidingWindowOf(raw: Record<string, unknown>, modelType: string): number | null {
  const w = modelType === 'gpt_oss' ? (raw.sliding_window ?? 128) : raw.sliding_window;
  const slides = modelType === 'mistral' || modelType === 'mixtral' || modelType === 'phimoe' || modelType === 'gpt_oss' || raw.use_sliding_window === true;
  return typeof w === 'number' && w > 0 && slides ? w : null;
}

/** `layer_types` as the config class fills it when absent (gpt-oss: sliding, full, sliding, …). */
function defaultLayerTypes(raw: Record<string, unknown>, modelType: string): string[] | null {
  if (modelType !== 'gpt_oss') return null;
  return Array.from({ length: num(raw, 'num_hidden_layers') }, (_, i) => ((i + 1) % 2 ? 'sliding_attention' : 'full_attention'));
}

/** Reads a llama-like config (see {@link LLAMA_LIKE}). */
export function readDecoderConfig(raw: Record<string, unknown>): DecoderConfig {
  const modelType = String(raw.model_type ?? '');
  const hidden = num(raw, 'hidden_size');
  const heads = num(raw, 'num_attention_heads');
  const headDim = typeof raw.head_dim === 'number' ? raw.head_dim : hidden / heads;
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw new UnsupportedModelError(`config.json: hidden_act "${String(act)}" is not supported (silu is)`);
  const dtype = raw.dtype ?? raw.torch_dtype ?? 'bfloat16';
  const granite = modelType === 'granitemoe';
  return {
    modelType,
    vocabSize: num(raw, 'vocab_size'),
    hidden,
    layers: num(raw, 'num_hidden_layers'),
    heads,
    kvHeads: num(raw, 'num_key_value_heads', heads),
    headDim,
    intermediate: num(raw, 'intermediate_size', 0),
    eps: num(raw, 'rms_norm_eps', modelType === 'olmoe' || modelType === 'phimoe' ? 1e-5 : 1e-6),
    attentionBias: raw.attention_bias === true || (modelType === 'gpt_oss' && raw.attention_bias !== false) || modelType === 'qwen2' || (modelType === 'qwen2_moe' && raw.qkv_bias !== false),
    mlpBias: raw.mlp_bias === true,
    tieEmbeddings: raw.tie_word_embeddings === true,
    // MLA models rotate only qk_rope_head_dim (their config maps head_dim to it).
    rope: readRope(raw, typeof raw.qk_rope_head_dim === 'number' ? raw.qk_rope_head_dim : headDim),
    dtype: dtype === 'float16' || dtype === 'float32' ? dtype : 'bfloat16',
    slidingWindow: slidingWindowOf(raw, modelType),
    layerTypes: Array.isArray(raw.layer_types) ? (raw.layer_types as string[]) : defaultLayerTypes(raw, modelType),
    zeroCentredNorms: modelType === 'qwen3_next',
    ...(modelType === 'phimoe' ? { layerNorm: true } : {}),
    ...(modelType === 'gpt_oss' ? { normWeightInFloat32: true } : {}),
    ...(modelType === 'olmoe' ? { clipQkv: typeof raw.clip_qkv === 'number' ? raw.clip_qkv : null } : {}),
    ...(granite
      ? {
          embeddingMultiplier: num(raw, 'embedding_multiplier', 1),
          residualMultiplier: num(raw, 'residual_multiplier', 1),
          logitsScaling: num(raw, 'logits_scaling', 1),
          attentionScale: num(raw, 'attention_multiplier', 1),
        }
      : {}),
  };
}
