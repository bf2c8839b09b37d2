/**
 * The validated, typed recipe. Readonly data; every node keeps the span it
 * came from so later stages (matching, planning) can blame source text.
 * Built by `buildIr` only from a document that passed validation.
 */
import type { Span } from '../source.js';
import type { LowCoveragePolicy, MoeRewriteDocument, UnsupportedMoePolicy } from '../parse/document.js';

/** compressed-tensors `QuantizationStrategy`. */
export type QuantizationStrategy = 'tensor' | 'channel' | 'group' | 'block' | 'token' | 'tensor_group' | 'attn_head';

/** compressed-tensors `ActivationOrdering`: `group` (alias `dynamic`) or `weight` (alias `static`). */
export type ActivationOrdering = 'group' | 'weight' | 'dynamic' | 'static';

/** compressed-tensors `QuantizationArgs`, every field materialized (c-t 0.18 defaults). */
export interface QuantizationArgs {
  readonly num_bits: number;
  readonly type: 'int' | 'float';
  readonly symmetric: boolean;
  readonly group_size: number | null;
  readonly strategy: QuantizationStrategy | null;
  readonly block_structure: readonly number[] | null;
  readonly dynamic: boolean | 'local';
  /** As written (compressed-tensors keeps the alias it was given: `static` stays `static`). */
  readonly actorder: ActivationOrdering | null;
  readonly scale_dtype: string | null;
  readonly zp_dtype: string | null;
  readonly observer: string | null;
  readonly observer_kwargs: Readonly<Record<string, unknown>>;
}

/** compressed-tensors `QuantizationScheme`. */
export interface QuantizationScheme {
  readonly targets: readonly string[];
  readonly weights: QuantizationArgs | null;
  readonly input_activations: QuantizationArgs | null;
  readonly output_activations: QuantizationArgs | null;
  readonly format: string | null;
}

/** A target or ignore entry as compressed-tensors reads it, with where it was written. */
export interface PatternRef {
  /** The c-t string: exact name, class name, or `re:<python regex>`. */
  readonly text: string;
  readonly origin: Span | undefined;
}

/** One resolved config group (`group_0`, … or the recipe's own names). */
export interface ConfigGroup {
  readonly name: string;
  /** The preset this group came from, upper-cased, if any. */
  readonly preset: string | null;
  readonly scheme: QuantizationScheme;
  /** Same order as `scheme.targets`. */
  readonly targets: readonly PatternRef[];
  readonly origin: Span | undefined;
}

/** The QuantizationConfig a QuantizationMixin modifier resolves to. */
export interface ResolvedQuantization {
  readonly groups: readonly ConfigGroup[];
  readonly ignore: readonly PatternRef[];
  readonly kvCacheScheme: QuantizationArgs | null;
}

/** Registry names of every modifier llm-compressor main accepts in a recipe. */
export type ModifierType =
  | 'QuantizationModifier'
  | 'GPTQModifier'
  | 'AWQModifier'
  | 'SmoothQuantModifier'
  | 'LogarithmicEqualizationModifier'
  | 'QuIPModifier'
  | 'SpinQuantModifier'
  | 'AutoRoundModifier'
  | 'SparseGPTModifier'
  | 'WandaPruningModifier'
  | 'ConstantPruningModifier'
  | 'MagnitudePruningModifier'
  | 'REAPPruningModifier';

/** One modifier, in flattened execution order. */
export interface ModifierIR {
  readonly type: ModifierType;
  /** Position in the flattened modifier list (execution order). */
  readonly index: number;
  readonly stage: string;
  readonly group: string;
  /**
   * Arguments with defaults materialized, in the key order llm-compressor's
   * `Recipe.yaml()` writes them (None values and `group` omitted).
   */
  readonly args: Readonly<Record<string, unknown>>;
  /** Whether llm-compressor would run this modifier in the sequential (calibrated) pipeline. */
  readonly requiresCalibrationData: boolean;
  /** Resolved config for QuantizationModifier / GPTQModifier / AutoRoundModifier. */
  readonly quantization: ResolvedQuantization | null;
  readonly origin: Span | undefined;
}

/** A declared MoE calibration rewrite with its origin. */
export interface MoeRewriteDecl extends MoeRewriteDocument {
  readonly origin: Span | undefined;
}

/** MoE calibration settings with defaults applied. */
export interface MoeSettings {
  readonly calibrateAllExperts: boolean;
  readonly onUnsupported: UnsupportedMoePolicy;
  /**
   * Fewest calibration tokens an expert's observers must see (≥ 1): every
   * token with `calibrateAllExperts`, else the tokens routed to it.
   */
  readonly minExpertTokens: number;
  /** What happens to an expert that saw fewer than `minExpertTokens`. */
  readonly onLowCoverage: LowCoveragePolicy;
  readonly rewrites: readonly MoeRewriteDecl[];
  readonly origin: Span | undefined;
}

/** The validated recipe. */
export interface RecipeIR {
  readonly name: string | null;
  readonly version: string | null;
  readonly model: string | null;
  readonly moe: MoeSettings;
  readonly stages: readonly { readonly name: string; readonly origin: Span | undefined }[];
  readonly modifiers: readonly ModifierIR[];
}
