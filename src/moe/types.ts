/**
 * The vocabulary of MoE calibration rewrites: how a block routes tokens,
 * how its experts are stored, and what the rewrite does to them. Shared by
 * the built-in catalog, recipe-declared rewrites, detection and unpacking.
 */

/**
 * How a router turns logits into top-k expert weights.
 * - `softmax_topk`: softmax over all experts, then top-k (optionally renormalised).
 * - `sigmoid_group_topk`: sigmoid scores plus a correction bias, top-k within
 *   the best `topk_group` of `n_group` groups, optional renormalisation, then
 *   scaled by `routed_scaling_factor` (DeepSeek-V3 family).
 * - `topk_softmax`: top-k on raw logits, softmax over the chosen k (gpt-oss, GraniteMoE).
 * - `topk_sigmoid`: top-k on raw logits, sigmoid of the chosen ones (Llama 4).
 * - `sparsemixer`: Phi-MoE's sparse-mixer top-2 selection.
 */
export type RouterKind = 'softmax_topk' | 'sigmoid_group_topk' | 'topk_softmax' | 'topk_sigmoid' | 'sparsemixer';

/** Whether the chosen top-k weights are renormalised to sum to one. */
export type TopkNormalisation = 'always' | 'never' | 'config:norm_topk_prob';

/** The router of one MoE block class. */
export interface RouterFacts {
  readonly kind: RouterKind;
  /** Attribute of the block holding the router, e.g. `gate` or `router`. */
  readonly attribute: string;
  readonly class: string;
  /** True when the router class subclasses `nn.Linear` (then a `Linear` target matches it). */
  readonly isLinear: boolean;
  readonly normalisation: TopkNormalisation;
  /** Router carries a bias parameter (gpt-oss). */
  readonly hasBias: boolean;
  /** Group-limited selection: config keys of the group count and groups kept. */
  readonly groups?: { readonly nGroup: 'n_group'; readonly topkGroup: 'topk_group' };
  /** Buffer added to scores for selection only (DeepSeek-V3's `e_score_correction_bias`). */
  readonly scoreCorrectionBias?: 'e_score_correction_bias';
  /** Config key of the factor applied to the routed weights. */
  readonly scalingFactor?: 'routed_scaling_factor';
}

/**
 * A fused experts layout, named as transformers' `@use_experts_implementation`
 * declares it (defaults: concatenated, not transposed, no bias, with gate).
 */
export interface FusedLayout {
  readonly kind: 'fused';
  /** Gate and up projections live in one `gate_up_proj` parameter (`false`: interleaved or separate). */
  readonly isConcatenated: boolean;
  /** Parameters stored `[E, in, out]` instead of `[E, out, in]`. */
  readonly isTransposed: boolean;
  readonly hasBias: boolean;
  readonly hasGate: boolean;
}

/** Experts already held as a ModuleList of MLP modules with `Linear` projections. */
export interface ModuleListLayout {
  readonly kind: 'module_list';
}

/** How the routed experts of a block are stored. */
export type ExpertsLayout = FusedLayout | ModuleListLayout;

/** `@use_experts_implementation` defaults. */
export const DEFAULT_FUSED_LAYOUT: FusedLayout = {
  kind: 'fused',
  isConcatenated: true,
  isTransposed: false,
  hasBias: false,
  hasGate: true,
};

/**
 * What a calibration rewrite does to a block.
 * - `unpack-fused-experts`: fused 3-D experts become per-expert `Linear` modules
 *   (`experts.<i>.gate_proj|up_proj|down_proj`), and every calibration token
 *   runs through every expert while the block output stays the routed one.
 * - `route-all-tokens`: experts are already `Linear` MLPs; only the routing
 *   changes during calibration (every token through every expert, output unchanged).
 */
export type RewriteKind = 'unpack-fused-experts' | 'route-all-tokens';

/** The class that replaces a fused experts module when it is unpacked. */
export type LinearExpertsClass = 'LinearExperts2D' | 'Llama4LinearExperts';

/** llm-compressor 0.9–0.11's per-class calibration wrapper for a block class. */
export interface LegacyWrapper {
  /** Registered wrapper class, e.g. `CalibrationGlm4MoeLiteMoE`. */
  readonly class: string;
  /** `is_permanent`: the wrapper stays in the saved model. */
  readonly permanent: boolean;
  /** True when the wrapper unpacked experts into `Linear` modules; false when it kept the fused 3-D parameters. */
  readonly unpacksExperts: boolean;
}
