/**
 * Every fused experts class transformers 5.17 decorates with
 * `@use_experts_implementation`, with the layout the decorator declares.
 *
 * llm-compressor ≥ 0.12 linearizes any module of such a class, whatever MoE
 * block holds it; this table lets quantc do the same for blocks that are not
 * in the catalog (Qwen3-VL-MoE, DeepSeek-V2, MiniMax, Jamba …), so only
 * experts transformers does not know need a declared rewrite.
 */
import { DEFAULT_FUSED_LAYOUT, type FusedLayout } from './types.js';

/** One fused experts class of transformers. */
export interface FusedExpertsClass {
  readonly class: string;
  readonly modelType: string;
  readonly layout: FusedLayout;
  /**
   * Class of the `act_fn` child llm-compressor adds when the fused module has
   * none: it builds one from the config's activation, which it overrides to
   * `sigmoid` for gpt-oss-style experts and `silu` for LFM2-MoE.
   */
  readonly unpackedActFn?: string;
}

type Flags = Partial<Omit<FusedLayout, 'kind'>>;

const ROWS: readonly (readonly [string, string, Flags])[] = [
  ['AfmoeExperts', 'afmoe', {}],
  ['AXK1Experts', 'axk1', {}],
  ['AXK2Experts', 'axk2', {}],
  ['Cohere2MoeExperts', 'cohere2_moe', {}],
  ['DeepseekOcr2TextExperts', 'deepseek_ocr2', {}],
  ['DeepseekV2Experts', 'deepseek_v2', {}],
  ['DeepseekV3Experts', 'deepseek_v3', {}],
  ['DeepseekV32Experts', 'deepseek_v32', {}],
  ['DeepseekV4Experts', 'deepseek_v4', {}],
  ['DiffusionGemmaTextExperts', 'diffusion_gemma', {}],
  ['Dots1Experts', 'dots1', {}],
  ['Ernie4_5_MoeExperts', 'ernie4_5_moe', {}],
  ['Ernie4_5_VLMoeMoeExperts', 'ernie4_5_vl_moe', {}],
  ['ExaoneMoeExperts', 'exaone_moe', {}],
  ['FlexOlmoExperts', 'flex_olmo', {}],
  ['Gemma4TextExperts', 'gemma4', {}],
  ['Glm4MoeExperts', 'glm4_moe', {}],
  ['Glm4MoeLiteExperts', 'glm4_moe_lite', {}],
  ['Glm4vMoeTextExperts', 'glm4v_moe', {}],
  ['Glm5NextTextExperts', 'glm5_next', {}],
  ['GlmMoeDsaExperts', 'glm_moe_dsa', {}],
  ['GptOssExperts', 'gpt_oss', { isConcatenated: false, isTransposed: true, hasBias: true }],
  ['GraniteMoeExperts', 'granitemoe', {}],
  ['GraniteMoeSWAExperts', 'granitemoe_swa', {}],
  ['GraniteMoeHybridExperts', 'granitemoehybrid', {}],
  ['GraniteMoeSharedExperts', 'granitemoeshared', {}],
  ['HunYuanMoEV1Experts', 'hunyuan_v1_moe', {}],
  ['HYV3Experts', 'hy_v3', {}],
  ['HYV4Experts', 'hy_v4', {}],
  ['InklingExperts', 'inkling', {}],
  ['JambaExperts', 'jamba', {}],
  ['KimiLinearExperts', 'kimi_linear', {}],
  ['LagunaExperts', 'laguna', {}],
  ['Lfm2MoeExperts', 'lfm2_moe', {}],
  ['MellumExperts', 'mellum', {}],
  ['MiMoV2FlashExperts', 'mimo_v2_flash', {}],
  ['MiniMaxExperts', 'minimax', {}],
  ['MiniMaxM2Experts', 'minimax_m2', {}],
  ['MiniMaxM3VLExperts', 'minimax_m3_vl', {}],
  ['Mistral4Experts', 'mistral4', {}],
  ['MixtralExperts', 'mixtral', {}],
  ['NemotronHExperts', 'nemotron_h', { hasGate: false }],
  ['OlmoeExperts', 'olmoe', {}],
  ['OpenAIPrivacyFilterExperts', 'openai_privacy_filter', { isTransposed: true, hasBias: true }],
  ['PhimoeExperts', 'phimoe', {}],
  ['Qwen2MoeExperts', 'qwen2_moe', {}],
  ['Qwen3_5MoeExperts', 'qwen3_5_moe', {}],
  ['Qwen3MoeExperts', 'qwen3_moe', {}],
  ['Qwen3NextExperts', 'qwen3_next', {}],
  ['Qwen3OmniMoeThinkerTextExperts', 'qwen3_omni_moe', {}],
  ['Qwen3OmniMoeTalkerTextExperts', 'qwen3_omni_moe', {}],
  ['Qwen3VLMoeTextExperts', 'qwen3_vl_moe', {}],
  ['Qwen4ExpTextExperts', 'qwen4_exp', {}],
  ['SolarOpenExperts', 'solar_open', {}],
  ['ZayaExperts', 'zaya', {}],
];

const ACT_FN: Readonly<Record<string, string>> = {
  gpt_oss: 'Sigmoid',
  openai_privacy_filter: 'Sigmoid',
  lfm2_moe: 'SiLUActivation',
};

/** The table, keyed by experts class name. */
export const FUSED_EXPERTS_CLASSES: ReadonlyMap<string, FusedExpertsClass> = new Map(
  ROWS.map(([cls, modelType, flags]) => [
    cls,
    {
      class: cls,
      modelType,
      layout: { ...DEFAULT_FUSED_LAYOUT, ...flags },
      ...(ACT_FN[modelType] !== undefined ? { unpackedActFn: ACT_FN[modelType] } : {}),
    },
  ]),
);
