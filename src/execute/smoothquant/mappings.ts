/**
 * SmoothQuant's mappings (llm-compressor `smoothquant/utils.py`): which
 * normalization layer (smooth layer) is smoothed against which Linear layers
 * that read its output (balance layers), per architecture class, and their
 * resolution against a module tree: one mapping per smooth-layer match, its
 * balance layers the matches inside the same parent (the decoder layer).
 */
import { compilePattern, patternRef, type CompiledPattern } from '../../match/pattern.js';

/** One mapping as the registry and recipes write it: balance patterns, then the smooth pattern. */
export type MappingSpec = readonly [readonly string[], string];

const DEFAULT: readonly MappingSpec[] = [
  [['re:.*q_proj', 're:.*k_proj', 're:.*v_proj'], 're:.*input_layernorm'],
  [['re:.*gate_proj', 're:.*up_proj'], 're:.*post_attention_layernorm'],
];
const ATTENTION_ONLY: readonly MappingSpec[] = [[['re:.*q_proj', 're:.*k_proj', 're:.*v_proj'], 're:.*input_layernorm']];
const QWEN_MOE: readonly MappingSpec[] = [[['re:.*q_proj$', 're:.*k_proj$', 're:.*v_proj$'], 're:.*input_layernorm$']];
const DEEPSEEK_V2: readonly MappingSpec[] = [[['re:.*q(_a)?_proj$', 're:.*kv_a_proj_with_mqa'], 're:.*input_layernorm']];
const BLOOM: readonly MappingSpec[] = [
  [['re:.*query_key_value'], 're:.*input_layernorm'],
  [['re:.*dense_h_to_4h'], 're:.*post_attention_layernorm'],
];
const PHI3: readonly MappingSpec[] = [
  [['re:.*qkv_proj'], 're:.*input_layernorm'],
  [['re:.*gate_up_proj'], 're:.*post_attention_layernorm'],
];
const COHERE: readonly MappingSpec[] = [
  [['re:.*self_attn\\.q_proj$', 're:.*self_attn\\.k_proj$', 're:.*self_attn\\.v_proj$', 're:.*mlp\\.gate_proj$', 're:.*mlp\\.up_proj$'], 're:.*input_layernorm$'],
];

/** llm-compressor's `MAPPINGS_REGISTRY`, by model class; other classes get the default mappings. */
export const SMOOTHQUANT_MAPPINGS: Readonly<Record<string, readonly MappingSpec[]>> = {
  BloomForCausalLM: BLOOM,
  ChatGLMForConditionalGeneration: BLOOM,
  CohereForCausalLM: COHERE,
  Cohere2ForCausalLM: COHERE,
  Cohere2VisionForConditionalGeneration: COHERE,
  DeepseekV2ForCausalLM: DEEPSEEK_V2,
  DeepseekV3ForCausalLM: DEEPSEEK_V2,
  Ernie4_5_MoeForCausalLM: ATTENTION_ONLY,
  Gemma2ForCausalLM: DEFAULT,
  Gemma3ForCausalLM: DEFAULT,
  Gemma3ForConditionalGeneration: DEFAULT,
  Glm4MoeForCausalLM: DEFAULT,
  Glm4MoeLiteForCausalLM: DEEPSEEK_V2,
  GlmMoeDsaForCausalLM: DEEPSEEK_V2,
  GraniteForCausalLM: DEFAULT,
  Llama4ForConditionalGeneration: DEFAULT,
  LlamaForCausalLM: DEFAULT,
  Mistral3ForConditionalGeneration: DEFAULT,
  MistralForCausalLM: DEFAULT,
  MixtralForCausalLM: ATTENTION_ONLY,
  Phi3ForCausalLM: PHI3,
  Phi3VForCausalLM: PHI3,
  Qwen2ForCausalLM: DEFAULT,
  Qwen2_5OmniModel: DEFAULT,
  Qwen2_5OmniThinkerForConditionalGeneration: DEFAULT,
  Qwen2_5_VLForConditionalGeneration: DEFAULT,
  Qwen3ForCausalLM: DEFAULT,
  Qwen2MoeForCausalLM: QWEN_MOE,
  Qwen3MoeForCausalLM: QWEN_MOE,
  SeedOssForCausalLM: DEFAULT,
};

/** The mappings llm-compressor uses for a model class (registry, else default). */
export function registryMappings(architecture: string): { readonly mappings: readonly MappingSpec[]; readonly registered: boolean } {
  const found = SMOOTHQUANT_MAPPINGS[architecture];
  return { mappings: found ?? DEFAULT, registered: found !== undefined };
}

/** One resolved mapping: a smooth layer and the Linear layers reading its output. */
export interface SmoothMapping {
  readonly smooth: string;
  readonly balance: readonly string[];
}

/** A smooth-layer match that is not smoothed, and why. */
export interface SkippedMapping {
  readonly smooth: string;
  readonly reason: string;
}

/** Why mappings cannot be resolved; the message is user-facing. */
export class MappingError extends Error {}

function compiled(text: string): CompiledPattern {
  const p = compilePattern(patternRef(text));
  if (!p.value) throw new MappingError(`SmoothQuant mapping pattern "${text}" is not a valid pattern`);
  return p.value;
}

function matches(p: CompiledPattern, name: string): boolean {
  return p.kind === 'regex' ? (p.test?.(name) ?? false) : p.body === name;
}

function parentOf(name: string): string {
  const i = name.lastIndexOf('.');
  return i < 0 ? '' : name.slice(0, i);
}

/**
 * Resolves `specs` against `names` (module names in execution order): each
 * smooth-layer match becomes a mapping whose balance layers are the
 * balance-pattern matches under the same parent, in order; mappings are
 * returned in model order of their smooth layers. A mapping whose
 * smooth and balance layers are all ignored, or that has no balance layer,
 * is skipped (llm-compressor logs a warning for both).
 */
export function resolveMappings(names: readonly string[], specs: readonly MappingSpec[], ignored: (name: string) => boolean): { mappings: SmoothMapping[]; skipped: SkippedMapping[] } {
  const mappings: SmoothMapping[] = [];
  const skipped: SkippedMapping[] = [];
  for (const [balanceTexts, smoothText] of specs) {
    const smooth = compiled(smoothText);
    const balance = balanceTexts.map(compiled);
    for (const name of names) {
      if (!matches(smooth, name)) continue;
      const prefix = `${parentOf(name)}.`;
      const members = names.filter((n) => n !== name && n.startsWith(prefix) && balance.some((b) => matches(b, n)));
      if (members.length === 0) skipped.push({ smooth: name, reason: 'no balance layers were found' });
      else if (ignored(name) && members.every(ignored)) skipped.push({ smooth: name, reason: 'all layers in the mapping are in the ignore list' });
      else mappings.push({ smooth: name, balance: members });
    }
  }
  // In model order: the order the sequential pipeline reaches (and smooths) them.
  const order = new Map(names.map((n, i) => [n, i]));
  mappings.sort((a, b) => order.get(a.smooth)! - order.get(b.smooth)!);
  return { mappings, skipped };
}
