/**
 * What the MoE planner needs to know about each MoE block of a tree, kept
 * beside the tree as plain indices so the planner never re-derives it from
 * class names.
 */

/**
 * How a fused experts module stores its weights, as transformers'
 * `@use_experts_implementation(is_concatenated, is_transposed, has_bias,
 * has_gate)` declares it (defaults true/false/false/true).
 */
export interface ExpertsImplementation {
  /** `gate_up_proj` holds gate then up halves; false means interleaved (gpt-oss: gate = `[..., ::2]`). */
  readonly isConcatenated: boolean;
  /** Weights stored `[E, in, out]` (`x @ W`) instead of `[E, out, in]` (`F.linear`). */
  readonly isTransposed: boolean;
  /** `gate_up_proj_bias` / `down_proj_bias` parameters exist. */
  readonly hasBias: boolean;
  /** A gate projection exists (`gate_up_proj`); false means `up_proj` only. */
  readonly hasGate: boolean;
}

/** One per-expert Linear after unpacking: `experts.<i>.<name>`. */
export interface ExpertLinearShape {
  /** `gate_proj`, `up_proj` or `down_proj`. */
  readonly name: string;
  /** `[out_features, in_features]`, as `nn.Linear.weight`. */
  readonly shape: readonly [number, number];
  readonly bias: boolean;
}

/** One MoE block of a tree. Module indices point into the tree's arrays. */
export interface MoeBlockFacts {
  /** The block module (e.g. `model.layers.1.mlp`, class `Glm4MoeLiteMoE`). */
  readonly block: number;
  /** The fused experts container (e.g. `…mlp.experts`, class `Glm4MoeLiteExperts`). */
  readonly experts: number;
  /** The router (`…mlp.gate`, `…mlp.router`, `…feed_forward.router`). */
  readonly router: number;
  /** The shared expert MLP, or -1. */
  readonly sharedExperts: number;
  /** The sigmoid gate on the shared expert (`shared_expert_gate`, a Linear), or -1. */
  readonly sharedExpertGate: number;
  readonly numExperts: number;
  /** Experts chosen per token (`num_experts_per_tok` …), when the config says. */
  readonly topK: number | undefined;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly layout: ExpertsImplementation;
  /**
   * True when the experts class carries `@use_experts_implementation`, which
   * is how llm-compressor main detects fused experts (Llama-4's does not; it
   * has an explicit registration instead).
   */
  readonly decorated: boolean;
  /**
   * The Linear modules each expert becomes when unpacked, in the module order
   * llm-compressor gives them (`up_proj`, `gate_proj`, `down_proj`).
   */
  readonly expertLinears: readonly ExpertLinearShape[];
  /** dtype of the expert weights. */
  readonly dtype: string;
}

/** MoE facts of a whole tree, blocks in module order. */
export interface MoeFacts {
  readonly blocks: readonly MoeBlockFacts[];
}

/** The default layout of `@use_experts_implementation` without arguments. */
export const DEFAULT_EXPERTS_LAYOUT: ExpertsImplementation = {
  isConcatenated: true,
  isTransposed: false,
  hasBias: false,
  hasGate: true,
};
