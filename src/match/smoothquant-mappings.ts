/**
 * SmoothQuant's mappings (llm-compressor `smoothquant/utils.py`): which
 * normalization layer (smooth layer) is smoothed against which Linear layers
 * that read its output (balance layers), per architecture class, and their
 * resolution against a module tree: one mapping per smooth-layer match, its
 * balance layers the matches inside the same parent (the decoder layer).
 */
import { classIsA, classOf, type ModuleTree } from '../model/module-tree.js';
import { compressNames } from './compress-names.js';
import { compilePattern, compilePatterns, patternRef, type CompiledPattern } from './pattern.js';

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
  const problem = p.diagnostics.find((d) => d.severity === 'error');
  if (!p.value || problem) throw new MappingError(`SmoothQuant mapping pattern "${text}" does not compile: ${problem?.message ?? 'not a valid pattern'}`);
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
 * balance-pattern matches under the same parent (by pattern, then in
 * model order); mappings are
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
    // One pass per balance pattern, then a prefix filter per smooth layer (fine-grained MoE trees hold ~10⁵ modules).
    // Pattern by pattern, as compressed-tensors' match_modules_set lists them (every expert's gate_proj, then every up_proj).
    const seen = new Set<string>();
    const candidates = balance.flatMap((b) => names.filter((n) => !seen.has(n) && matches(b, n) && seen.add(n)));
    for (const name of names) {
      if (!matches(smooth, name)) continue;
      const prefix = `${parentOf(name)}.`;
      const members = candidates.filter((n) => n !== name && n.startsWith(prefix));
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

/** Where a SmoothQuantModifier's mappings come from. */
export type MappingSource = 'recipe' | 'registry' | 'default';

/** A SmoothQuantModifier's mappings resolved against a module tree. */
export interface ResolvedSmoothQuant {
  readonly source: MappingSource;
  /** The model class the registry was asked for. */
  readonly architecture: string;
  readonly mappings: readonly SmoothMapping[];
  readonly skipped: readonly SkippedMapping[];
}

/** A recipe mapping `[[balance…], smooth]` (the registry's order). */
function toMappingSpec(x: unknown): MappingSpec {
  if (!Array.isArray(x) || x.length !== 2 || typeof x[1] !== 'string') throw new MappingError(`SmoothQuantModifier mapping ${JSON.stringify(x)} is not [[balance layers…], smooth layer]`);
  const balance = Array.isArray(x[0]) ? (x[0] as unknown[]).map(String) : [String(x[0])];
  return [balance, x[1]];
}

/**
 * Resolves a SmoothQuantModifier's arguments (`mappings`, `ignore`) against
 * `tree`: the recipe's mappings, else the registry's for the tree's root
 * class, else the default ones. Throws {@link MappingError}.
 */
export function resolveSmoothQuant(tree: ModuleTree, args: Readonly<Record<string, unknown>>): ResolvedSmoothQuant {
  const architecture = classOf(tree, 0).name;
  const registry = registryMappings(architecture);
  const specs = Array.isArray(args.mappings) ? (args.mappings as unknown[]).map(toMappingSpec) : registry.mappings;
  const source: MappingSource = Array.isArray(args.mappings) ? 'recipe' : registry.registered ? 'registry' : 'default';
  const ignore = compilePatterns((Array.isArray(args.ignore) ? (args.ignore as unknown[]).map(String) : []).map((t) => patternRef(t))).value;
  const byName = new Map(tree.names.map((n, i) => [n, i]));
  const ignored = (name: string): boolean =>
    ignore.some((p) => (p.kind === 'regex' ? (p.test?.(name) ?? false) : p.body === name || classIsA(classOf(tree, byName.get(name)!), p.body)));
  return { source, architecture, ...resolveMappings(tree.names, specs, ignored) };
}

/**
 * Mappings as compressed lines for plans: `model.layers.{0..31}.input_layernorm
 * → self_attn.{q,k,v}_proj`, balance layers relative to the smooth layer's parent.
 */
export function mappingLines(mappings: readonly SmoothMapping[]): string[] {
  const relative = mappings.map((m) => {
    const prefix = `${parentOf(m.smooth)}.`;
    return compressNames(m.balance.map((b) => b.slice(prefix.length)))
      .map((g) => g.pattern)
      .join(', ');
  });
  return compressNames(
    mappings.map((m) => m.smooth),
    (i) => relative[i]!,
  ).map((g) => `${g.pattern} → ${g.key}`);
}
