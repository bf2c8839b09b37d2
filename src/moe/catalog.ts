/**
 * Built-in calibration rewrites: one entry per MoE block class that
 * transformers 5.17 builds for the supported architectures, as data.
 *
 * Every fact here was read from the transformers model sources (class and
 * attribute names, `@use_experts_implementation` arguments, router forward)
 * and from llm-compressor (0.11's registry of wrappers; main's
 * `LinearExperts2D` linearization). Adding an architecture is adding an
 * entry; a recipe can declare the same facts for a class not listed here.
 */
import {
  DEFAULT_FUSED_LAYOUT,
  type FusedLayout,
  type LegacyWrapper,
  type LinearExpertsClass,
  type RouterFacts,
} from './types.js';

/** Config keys that size a block (as written in `config.json`). */
export interface MoeConfigKeys {
  /**
   * Routed experts per block: the key published checkpoints use first, then
   * the aliases the config class maps onto it (`attribute_map`), e.g.
   * Qwen3-MoE's `num_experts` is stored as `num_local_experts`.
   */
  readonly numExperts: readonly string[];
  /** Experts chosen per token. */
  readonly topK: string;
  /** Intermediate size of one routed expert. */
  readonly intermediate: string;
}

/** The routed experts of a block class. */
export interface ExpertsFacts {
  /** Attribute of the block holding the experts (always `experts` in transformers 5). */
  readonly attribute: string;
  readonly class: string;
  readonly layout: FusedLayout;
  /**
   * Class of the `act_fn` child the unpacked module gets when the fused one
   * has none (llm-compressor builds it from the config's activation).
   */
  readonly unpackedActFn?: string;
}

/** What llm-compressor does with a block class, per era. */
export interface LlmCompressorFacts {
  /** 0.9–0.11 registry wrapper, or null when 0.11 left the block alone (silently). */
  readonly legacy: LegacyWrapper | null;
  /** ≥ 0.12 / main: the class the fused experts module becomes. */
  readonly linearizedAs: LinearExpertsClass;
}

/** One built-in MoE block class and its calibration rewrite. */
export interface CatalogEntry {
  readonly blockClass: string;
  /** `model_type`s whose models build this block. */
  readonly modelTypes: readonly string[];
  readonly router: RouterFacts;
  readonly experts: ExpertsFacts;
  /** Attributes holding always-on shared experts (dense MLPs, quantized as usual). */
  readonly sharedExperts: readonly string[];
  /** Attribute of the Linear that gates the shared expert's output (Qwen2-MoE, Qwen3-Next). */
  readonly sharedExpertGate?: string;
  readonly config: MoeConfigKeys;
  /** The rewrite unpacks fused experts and routes every token through every expert. */
  readonly rewrite: 'unpack-fused-experts';
  /** Unpacking is permanent: the saved checkpoint holds per-expert 2-D weights, as llm-compressor ≥ 0.12 saves it. */
  readonly permanent: true;
  readonly llmCompressor: LlmCompressorFacts;
}

const softmaxRouter = (cls: string, normalisation: RouterFacts['normalisation'], attribute = 'gate'): RouterFacts => ({
  kind: 'softmax_topk',
  attribute,
  class: cls,
  isLinear: false,
  normalisation,
  hasBias: false,
});

const groupRouter = (cls: string): RouterFacts => ({
  kind: 'sigmoid_group_topk',
  attribute: 'gate',
  class: cls,
  isLinear: false,
  normalisation: 'config:norm_topk_prob',
  hasBias: false,
  groups: { nGroup: 'n_group', topkGroup: 'topk_group' },
  scoreCorrectionBias: 'e_score_correction_bias',
  scalingFactor: 'routed_scaling_factor',
});

const experts = (cls: string, layout: FusedLayout = DEFAULT_FUSED_LAYOUT): ExpertsFacts => ({
  attribute: 'experts',
  class: cls,
  layout,
});

const keys = (numExperts: readonly string[], intermediate: string): MoeConfigKeys => ({
  numExperts,
  topK: 'num_experts_per_tok',
  intermediate,
});

const legacy = (cls: string, permanent: boolean, unpacksExperts: boolean): LegacyWrapper => ({
  class: cls,
  permanent,
  unpacksExperts,
});

const linearized = (legacyWrapper: LegacyWrapper | null, linearizedAs: LinearExpertsClass = 'LinearExperts2D') => ({
  legacy: legacyWrapper,
  linearizedAs,
});

/** Every built-in entry, in a stable order (alphabetical by model type family). */
export const MOE_CATALOG: readonly CatalogEntry[] = [
  {
    blockClass: 'DeepseekV3MoE',
    modelTypes: ['deepseek_v3'],
    router: groupRouter('DeepseekV3TopkRouter'),
    experts: experts('DeepseekV3Experts'),
    sharedExperts: ['shared_experts'],
    config: keys(['n_routed_experts', 'num_local_experts'], 'moe_intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(legacy('CalibrationDeepseekV3MoE', true, false)),
  },
  {
    blockClass: 'Glm4MoeMoE',
    modelTypes: ['glm4_moe'],
    router: groupRouter('Glm4MoeTopkRouter'),
    experts: experts('Glm4MoeExperts'),
    sharedExperts: ['shared_experts'],
    config: keys(['n_routed_experts', 'num_local_experts'], 'moe_intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(legacy('CalibrationGlm4MoeMoE', false, false)),
  },
  {
    blockClass: 'Glm4MoeLiteMoE',
    modelTypes: ['glm4_moe_lite'],
    router: groupRouter('Glm4MoeLiteTopkRouter'),
    experts: experts('Glm4MoeLiteExperts'),
    sharedExperts: ['shared_experts'],
    config: keys(['n_routed_experts', 'num_local_experts'], 'moe_intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(legacy('CalibrationGlm4MoeLiteMoE', true, true)),
  },
  {
    blockClass: 'GlmMoeDsaMoE',
    modelTypes: ['glm_moe_dsa'],
    router: groupRouter('GlmMoeDsaTopkRouter'),
    experts: experts('GlmMoeDsaExperts'),
    sharedExperts: ['shared_experts'],
    config: keys(['n_routed_experts', 'num_local_experts'], 'moe_intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(legacy('CalibrationGlmMoeDsaMoE', true, true)),
  },
  {
    blockClass: 'GptOssMLP',
    modelTypes: ['gpt_oss'],
    router: { ...softmaxRouter('GptOssTopKRouter', 'never', 'router'), kind: 'topk_softmax', hasBias: true },
    experts: {
      // Gate and up are interleaved in `gate_up_proj` (`[..., ::2]`, `[..., 1::2]`), hence not concatenated.
      ...experts('GptOssExperts', { kind: 'fused', isConcatenated: false, isTransposed: true, hasBias: true, hasGate: true }),
      unpackedActFn: 'Sigmoid',
    },
    sharedExperts: [],
    config: keys(['num_local_experts', 'num_experts'], 'intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(null),
  },
  {
    blockClass: 'GraniteMoeMoE',
    modelTypes: ['granitemoe'],
    router: { ...softmaxRouter('GraniteMoeTopKRouter', 'never', 'router'), kind: 'topk_softmax' },
    experts: experts('GraniteMoeExperts'),
    sharedExperts: [],
    config: keys(['num_local_experts'], 'intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(null),
  },
  {
    blockClass: 'Llama4TextMoe',
    modelTypes: ['llama4', 'llama4_text'],
    router: { ...softmaxRouter('Llama4Router', 'never', 'router'), kind: 'topk_sigmoid', isLinear: true },
    // Not decorated with `@use_experts_implementation`; llm-compressor registers
    // `Llama4LinearExperts` for it explicitly with these flags.
    experts: experts('Llama4TextExperts', { kind: 'fused', isConcatenated: false, isTransposed: true, hasBias: false, hasGate: true }),
    sharedExperts: ['shared_expert'],
    config: keys(['num_local_experts'], 'intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(legacy('SequentialLlama4TextMoe', true, true), 'Llama4LinearExperts'),
  },
  {
    blockClass: 'MixtralSparseMoeBlock',
    modelTypes: ['mixtral'],
    router: softmaxRouter('MixtralTopKRouter', 'always'),
    experts: experts('MixtralExperts'),
    sharedExperts: [],
    config: keys(['num_local_experts', 'num_experts'], 'intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(null),
  },
  {
    blockClass: 'OlmoeSparseMoeBlock',
    modelTypes: ['olmoe'],
    router: softmaxRouter('OlmoeTopKRouter', 'config:norm_topk_prob'),
    experts: experts('OlmoeExperts'),
    sharedExperts: [],
    config: keys(['num_experts', 'num_local_experts'], 'intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(null),
  },
  {
    blockClass: 'PhimoeSparseMoeBlock',
    modelTypes: ['phimoe'],
    router: { ...softmaxRouter('PhimoeTopKRouter', 'never', 'router'), kind: 'sparsemixer', isLinear: true },
    experts: experts('PhimoeExperts'),
    sharedExperts: [],
    config: keys(['num_local_experts'], 'intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(null),
  },
  {
    blockClass: 'Qwen2MoeSparseMoeBlock',
    modelTypes: ['qwen2_moe'],
    router: softmaxRouter('Qwen2MoeTopKRouter', 'config:norm_topk_prob'),
    experts: experts('Qwen2MoeExperts'),
    sharedExperts: ['shared_expert'],
    sharedExpertGate: 'shared_expert_gate',
    config: keys(['num_experts'], 'moe_intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(null),
  },
  {
    blockClass: 'Qwen3MoeSparseMoeBlock',
    modelTypes: ['qwen3_moe'],
    router: softmaxRouter('Qwen3MoeTopKRouter', 'config:norm_topk_prob'),
    experts: experts('Qwen3MoeExperts'),
    sharedExperts: [],
    config: keys(['num_experts', 'num_local_experts'], 'moe_intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(legacy('CalibrationQwen3MoeSparseMoeBlock', false, false)),
  },
  {
    // Its router always renormalizes the top-k weights (no norm_topk_prob).
    blockClass: 'Qwen3VLMoeTextSparseMoeBlock',
    modelTypes: ['qwen3_vl_moe'],
    router: softmaxRouter('Qwen3VLMoeTextTopKRouter', 'always'),
    experts: experts('Qwen3VLMoeTextExperts'),
    sharedExperts: [],
    config: keys(['num_experts', 'num_local_experts'], 'moe_intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(legacy('CalibrateQwen3VLMoeTextSparseMoeBlock', true, true)),
  },
  {
    blockClass: 'Qwen3NextSparseMoeBlock',
    modelTypes: ['qwen3_next'],
    router: softmaxRouter('Qwen3NextTopKRouter', 'config:norm_topk_prob'),
    experts: experts('Qwen3NextExperts'),
    sharedExperts: ['shared_expert'],
    sharedExpertGate: 'shared_expert_gate',
    config: keys(['num_experts'], 'moe_intermediate_size'),
    rewrite: 'unpack-fused-experts',
    permanent: true,
    llmCompressor: linearized(legacy('CalibrationQwen3NextSparseMoeBlock', false, false)),
  },
];

const byBlock = new Map(MOE_CATALOG.map((e) => [e.blockClass, e]));
const byExperts = new Map(MOE_CATALOG.map((e) => [e.experts.class, e]));

/** The built-in entry for an MoE block class (exact class name), if any. */
export function catalogEntryForBlock(blockClass: string): CatalogEntry | undefined {
  return byBlock.get(blockClass);
}

/**
 * The built-in entry whose experts class is `expertsClass`. llm-compressor
 * main keys linearization on the experts class, so a block class quantc does
 * not list still resolves when it holds a known experts class.
 */
export function catalogEntryForExperts(expertsClass: string): CatalogEntry | undefined {
  return byExperts.get(expertsClass);
}
