/**
 * AWQ's mappings (llm-compressor `transform/awq/mappings.py`): which layer's
 * output (smooth layer: a norm, or a Linear such as `v_proj`/`up_proj`) is
 * scaled against which Linear layers reading it (balance layers), per model
 * class, and their resolution against a module tree as `_set_resolved_mappings`
 * does it: one mapping per smooth-layer match with the balance matches under
 * the same parent, skipped when the shapes are incompatible (`v_proj → o_proj`
 * on grouped-query attention), when no layer of it is quantized, or when only
 * its smooth layer is (no balance weights to search over); the parent
 * module whose output the grid search compares is the lowest common ancestor
 * of the balance layers that is not a ModuleList.
 */
import { classIsA, classOf, paramsOf, type ModuleTree } from '../model/module-tree.js';
import { compressNames } from './compress-names.js';
import { compilePattern, patternRef, type CompiledPattern } from './pattern.js';

/** One mapping as the registry and recipes write it. */
export interface AwqMappingSpec {
  readonly smooth: string;
  readonly balance: readonly string[];
}

const m = (smooth: string, balance: readonly string[]): AwqMappingSpec => ({ smooth, balance });

const QKV = m('re:.*input_layernorm$', ['re:.*q_proj$', 're:.*k_proj$', 're:.*v_proj$']);
const VO = m('re:.*v_proj$', ['re:.*o_proj$']);
const UD = m('re:.*up_proj$', ['re:.*down_proj$']);

const DEFAULT: readonly AwqMappingSpec[] = [QKV, VO, m('re:.*post_attention_layernorm$', ['re:.*gate_proj$', 're:.*up_proj$']), UD];
const MOE_DEFAULT: readonly AwqMappingSpec[] = [QKV, VO, m('re:.*post_attention_layernorm$', ['re:.*mlp.gate$', 're:.*mlp.experts.*.gate_proj$', 're:.*mlp.experts.*.up_proj$']), UD];
const LLAMA4: readonly AwqMappingSpec[] = [QKV, VO, m('re:.*post_attention_layernorm$', ['re:.*feed_forward.router$', 're:.*feed_forward.*.gate_proj$', 're:.*feed_forward.*.up_proj$']), UD];
const PHI: readonly AwqMappingSpec[] = [
  m('re:.*input_layernorm$', ['re:.*qkv_proj$']),
  m('re:.*qkv_proj$', ['re:.*o_proj$']),
  m('re:.*post_attention_layernorm$', ['re:.*gate_up_proj$']),
  m('re:.*gate_up_proj$', ['re:.*down_proj$']),
];
const GEMMA2: readonly AwqMappingSpec[] = [QKV, VO, m('re:.*pre_feedforward_layernorm$', ['re:.*gate_proj$', 're:.*up_proj$']), UD];
const GEMMA3: readonly AwqMappingSpec[] = [VO, m('re:.*pre_feedforward_layernorm$', ['re:.*gate_proj$', 're:.*up_proj$']), UD];
const COHERE: readonly AwqMappingSpec[] = [
  m('re:.*input_layernorm$', ['re:.*self_attn.q_proj$', 're:.*self_attn.k_proj$', 're:.*self_attn.v_proj$', 're:.*mlp.gate_proj$', 're:.*mlp.up_proj$']),
  VO,
  UD,
];
const MLA_ATTENTION: readonly AwqMappingSpec[] = [
  m('re:.*input_layernorm$', ['re:.*(q|q_a)_proj$', 're:.*kv_a_proj_with_mqa$']),
  m('re:.*q_a_layernorm$', ['re:.*q_b_proj$']),
  m('re:.*kv_a_layernorm$', ['re:.*kv_b_proj$']),
];
const DEEPSEEK: readonly AwqMappingSpec[] = [...MLA_ATTENTION, m('re:.*post_attention_layernorm$', ['re:.*mlp.gate$', 're:.*gate_proj$', 're:.*up_proj$']), UD];
const GLM4_MOE_LITE: readonly AwqMappingSpec[] = [...MLA_ATTENTION, m('re:.*post_attention_layernorm$', ['re:.*gate_proj$', 're:.*up_proj$']), UD];
const BLOOM: readonly AwqMappingSpec[] = [
  m('re:.*input_layernorm$', ['re:.*query_key_value$']),
  m('re:.*post_attention_layernorm$', ['re:.*dense_h_to_4h$']),
  m('re:.*gelu_impl$', ['re:.*dense_4h_to_h$']),
];
const EXAONE4: readonly AwqMappingSpec[] = [VO, UD];
const AFMOE: readonly AwqMappingSpec[] = [
  m('re:.*input_layernorm$', ['re:.*self_attn.q_proj$', 're:.*self_attn.k_proj$', 're:.*self_attn.v_proj$', 're:.*self_attn.gate_proj$']),
  VO,
  m('re:.*pre_mlp_layernorm$', ['re:.*mlp.router$', 're:.*mlp.*gate_proj$', 're:.*mlp.*up_proj$']),
  UD,
];

/** llm-compressor's `AWQ_MAPPING_REGISTRY`, by model class; other classes get the default mappings. */
export const AWQ_MAPPINGS: Readonly<Record<string, readonly AwqMappingSpec[]>> = {
  AfmoeForCausalLM: AFMOE,
  BloomForCausalLM: BLOOM,
  CohereForCausalLM: COHERE,
  Cohere2ForCausalLM: COHERE,
  Cohere2VisionForConditionalGeneration: COHERE,
  DeepseekV3ForCausalLM: DEEPSEEK,
  Exaone4ForCausalLM: EXAONE4,
  Gemma2ForCausalLM: GEMMA2,
  Gemma3ForCausalLM: GEMMA3,
  Gemma3ForConditionalGeneration: GEMMA3,
  Glm4MoeForCausalLM: MOE_DEFAULT,
  Glm4MoeLiteForCausalLM: GLM4_MOE_LITE,
  GlmMoeDsaForCausalLM: GLM4_MOE_LITE,
  GraniteForCausalLM: DEFAULT,
  LlamaForCausalLM: DEFAULT,
  Llama4ForConditionalGeneration: LLAMA4,
  Mistral3ForConditionalGeneration: DEFAULT,
  MistralForCausalLM: DEFAULT,
  NanbeigeForCausalLM: DEFAULT,
  OlmoForCausalLM: EXAONE4,
  Olmo3ForCausalLM: EXAONE4,
  Phi3ForCausalLM: PHI,
  Phi3VForCausalLM: PHI,
  Qwen2ForCausalLM: DEFAULT,
  Qwen2_5OmniModel: DEFAULT,
  Qwen2_5OmniThinkerForConditionalGeneration: DEFAULT,
  Qwen2_5_VLForConditionalGeneration: DEFAULT,
  Qwen2MoeForCausalLM: MOE_DEFAULT,
  Qwen3ForCausalLM: DEFAULT,
  Qwen3MoeForCausalLM: MOE_DEFAULT,
  SeedOssForCausalLM: DEFAULT,
  Ernie4_5_MoeForCausalLM: DEFAULT,
};

/**
 * Classes whose mappings llm-compressor builds at run time from the layer
 * types (hybrid attention); quantc has no such builder and asks for the
 * recipe's own mappings instead.
 */
export const AWQ_DYNAMIC_CLASSES: ReadonlySet<string> = new Set([
  'Qwen3NextForCausalLM',
  'Qwen3_5ForCausalLM',
  'Qwen3_5ForConditionalGeneration',
  'Qwen3_5MoeForCausalLM',
  'Qwen3_5MoeForConditionalGeneration',
  'Step3p5ForCausalLM',
]);

/** One resolved mapping: the smooth layer, its balance layers, and the parent module the search compares. */
export interface AwqMapping {
  readonly smooth: string;
  readonly balance: readonly string[];
  readonly parent: string;
  /** The parent module's class, where the executor needs it (MoE blocks). */
  readonly parentClass?: string;
}

/**
 * A smooth-layer match that is not smoothed, and why (`incompatible`: shapes;
 * `untargeted`: nothing quantized; `unquantized-balance`: only the smooth
 * layer is quantized, so the grid search has no weights to weigh).
 */
export interface AwqSkipped {
  readonly smooth: string;
  readonly balance: readonly string[];
  readonly kind: 'incompatible' | 'untargeted' | 'no-balance' | 'unquantized-balance';
  readonly reason: string;
}

/** Why AWQ mappings cannot be resolved; the message is user-facing. */
export class AwqMappingError extends Error {}

/** Where an AWQModifier's mappings come from. */
export type AwqMappingSource = 'recipe' | 'registry' | 'default';

/** An AWQModifier's mappings resolved against a module tree. */
export interface ResolvedAwq {
  readonly source: AwqMappingSource;
  readonly architecture: string;
  readonly mappings: readonly AwqMapping[];
  readonly skipped: readonly AwqSkipped[];
  /** Patterns (smooth or balance) of the mapping specs that matched no module. */
  readonly unmatched: readonly string[];
}

function compiled(text: string): CompiledPattern {
  const p = compilePattern(patternRef(text));
  const problem = p.diagnostics.find((d) => d.severity === 'error');
  if (!p.value || problem) throw new AwqMappingError(`AWQ mapping pattern "${text}" does not compile: ${problem?.message ?? 'not a valid pattern'}`);
  return p.value;
}

function parentOf(name: string): string {
  const i = name.lastIndexOf('.');
  return i < 0 ? '' : name.slice(0, i);
}

/** compressed-tensors `get_lowest_common_ancestor_name`. */
export function lowestCommonAncestor(names: readonly string[]): string {
  if (names.length === 0) return '';
  let lo = names[0]!;
  let hi = names[0]!;
  for (const n of names) {
    if (n < lo) lo = n;
    if (n > hi) hi = n;
  }
  const a = `.${lo}.`;
  const b = `.${hi}.`;
  let k = 0;
  while (k < a.length && k < b.length && a[k] === b[k]) k++;
  const prefix = a.slice(0, k);
  return prefix.slice(1, prefix.lastIndexOf('.'));
}

/** The shape facts resolution needs about a module. */
export interface AwqModuleFacts {
  /** Whether the module is a Linear (or subclass). */
  readonly linear: boolean;
  /** `[out, in]` of a Linear's weight. */
  readonly shape?: readonly [number, number];
  /** Whether it is a ModuleList (never a parent). */
  readonly moduleList: boolean;
  /** Its class and base classes (plain, non-regex patterns match a class name). */
  readonly classes: readonly string[];
}

/** llm-compressor's `_check_layers_are_compatible`: `v_proj`/`qkv_proj` against `o_proj` widths. */
function compatible(smooth: string, smoothFacts: AwqModuleFacts | undefined, balance: readonly string[], facts: (name: string) => AwqModuleFacts | undefined): boolean {
  if (!smoothFacts?.linear || !smoothFacts.shape) return true;
  for (const b of balance) {
    const f = facts(b);
    if (!f?.linear || !f.shape || !b.endsWith('.o_proj')) continue;
    if (smooth.endsWith('.v_proj') && smoothFacts.shape[0] !== f.shape[1]) return false;
    if (smooth.endsWith('.qkv_proj') && smoothFacts.shape[0] !== 3 * f.shape[1]) return false;
  }
  return true;
}

/**
 * compressed-tensors' `match_modules_set`: walks `names` in model order and
 * groups the matches of `targets` by parent context — a set is complete once
 * every target matched, and closes when a further match widens the common
 * ancestor of the set (the next layer, the next expert). Yields each set
 * as one list of names per target. Throws {@link AwqMappingError} where
 * compressed-tensors raises (a module matching two targets, an incomplete
 * last set).
 */
export function matchModulesSet(names: readonly string[], targets: readonly CompiledPattern[], texts: readonly string[], isMatch: (p: CompiledPattern, name: string) => boolean): string[][][] {
  const sets: string[][][] = [];
  const keys = [...new Set(texts)];
  let found = new Map<string, string[]>();
  let context: string | null = null;
  let unmatched = new Set(keys);
  const emit = (): void => {
    sets.push(texts.map((t) => found.get(t) ?? []));
  };
  for (const name of names) {
    const hit = new Set<string>();
    for (const [i, target] of targets.entries()) {
      if (!isMatch(target, name)) continue;
      const key = texts[i]!;
      let next: string = context === null ? name : lowestCommonAncestor([name, context]);
      if (unmatched.size === 0 && next !== context) {
        emit();
        found = new Map();
        next = name;
        unmatched = new Set(keys);
      }
      found.set(key, [...(found.get(key) ?? []), name]);
      context = next;
      unmatched.delete(key);
      hit.add(key);
    }
    if (hit.size > 1) throw new AwqMappingError(`module: ${name} was matched with multiple targets: ${[...hit].map((t) => `"${t}"`).join(', ')}`);
  }
  if (unmatched.size === keys.length) return sets;
  if (unmatched.size === 0) {
    emit();
    return sets;
  }
  const have = keys.filter((k) => !unmatched.has(k));
  throw new AwqMappingError(`Found a final incomplete set with matches found for keys: ${have.map((k) => `"${k}"`).join(', ')} but no matches found for keys: ${[...unmatched].map((k) => `"${k}"`).join(', ')}`);
}

/**
 * Resolves `specs` against `names` (module names in model order) as
 * `_set_resolved_mappings` does: per spec, the sets of
 * {@link matchModulesSet} over (smooth, balance…) — more than one smooth
 * layer in a set is an error — skipped when the shapes are incompatible
 * or no layer of the set is quantized; the parent is the lowest common
 * ancestor of the balance layers that is not a ModuleList. Mappings come
 * back in the order llm-compressor smooths them: decoder layer by decoder
 * layer, in spec order within a layer.
 */
export function resolveAwqMappings(
  names: readonly string[],
  specs: readonly AwqMappingSpec[],
  facts: (name: string) => AwqModuleFacts | undefined,
  quantized: (name: string) => boolean,
): { mappings: AwqMapping[]; skipped: AwqSkipped[]; unmatched: string[] } {
  const mappings: AwqMapping[] = [];
  const skipped: AwqSkipped[] = [];
  const unmatched: string[] = [];
  const isMatch = (p: CompiledPattern, name: string): boolean => (p.kind === 'regex' ? (p.test?.(name) ?? false) : p.body === name || (facts(name)?.classes.includes(p.body) ?? false));
  for (const spec of specs) {
    const texts = [spec.smooth, ...spec.balance];
    const targets = texts.map(compiled);
    for (const [i, t] of targets.entries()) if (!names.some((n) => isMatch(t, n))) unmatched.push(texts[i]!);
    for (const [smooths, ...nested] of matchModulesSet(names, targets, texts, isMatch)) {
      if (smooths!.length > 1) {
        const got = compressNames(smooths!).map((g) => g.pattern).join(', ');
        throw new AwqMappingError(`AWQ needs to match a single smooth layer for each mapping but got ${smooths!.length} (${got}) in one set of mapping ${JSON.stringify({ smooth_layer: spec.smooth, balance_layers: spec.balance })}: a balance pattern missing from some layers (a router on dense layers) merges the layers into one set`);
      }
      const name = smooths![0]!;
      const members = nested.flat();
      if (!compatible(name, facts(name), members, facts)) {
        skipped.push({ smooth: name, balance: members, kind: 'incompatible', reason: 'its output width differs from the input width of its balance layer (grouped-query attention), so llm-compressor skips it' });
        continue;
      }
      if (members.length === 0) {
        skipped.push({ smooth: name, balance: members, kind: 'no-balance', reason: 'no balance layers were found' });
        continue;
      }
      if (!quantized(name) && !members.some(quantized)) {
        skipped.push({ smooth: name, balance: members, kind: 'untargeted', reason: 'no layer of the mapping is targeted for quantization' });
        continue;
      }
      // llm-compressor's weight means divide by zero here with duo scaling on; with it off every grid point
      // leaves the parent's output unchanged and the first, the identity, is kept: smoothing changes nothing.
      if (!members.some(quantized)) {
        skipped.push({
          smooth: name,
          balance: members,
          kind: 'unquantized-balance',
          reason: 'none of its balance layers is quantized, so the grid search has no weights to weigh; llm-compressor keeps the identity with duo_scaling false and fails on its weight means otherwise',
        });
        continue;
      }
      let parent = lowestCommonAncestor(members);
      while (parent !== '' && facts(parent)?.moduleList) parent = parentOf(parent);
      mappings.push({ smooth: name, balance: members, parent });
    }
  }
  const layer = (name: string): number => Number(/(?:^|\.)layers\.(\d+)\./.exec(name)?.[1] ?? Infinity);
  mappings.sort((a, b) => layer(a.smooth) - layer(b.smooth));
  return { mappings, skipped, unmatched };
}

/** A recipe mapping `{smooth_layer, balance_layers}` (or `[smooth, [balance…]]`). */
function toSpec(x: unknown): AwqMappingSpec {
  if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
    const o = x as Record<string, unknown>;
    if (typeof o.smooth_layer === 'string' && Array.isArray(o.balance_layers)) {
      if (o.activation_hook_target !== undefined && o.activation_hook_target !== null) throw new AwqMappingError(`AWQ mapping of "${o.smooth_layer}": activation_hook_target is not supported by apply`);
      return { smooth: o.smooth_layer, balance: (o.balance_layers as unknown[]).map(String) };
    }
  }
  if (Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && Array.isArray(x[1])) return { smooth: x[0], balance: (x[1] as unknown[]).map(String) };
  throw new AwqMappingError(`AWQModifier mapping ${JSON.stringify(x)} is not {smooth_layer: …, balance_layers: [...]}`);
}

/** Module facts read from a tree. */
export function treeFacts(tree: ModuleTree): (name: string) => AwqModuleFacts | undefined {
  const byName = new Map(tree.names.map((n, i) => [n, i]));
  return (name) => {
    const i = byName.get(name);
    if (i === undefined) return undefined;
    const cls = classOf(tree, i);
    const weight = paramsOf(tree, i).find((p) => p.name === 'weight');
    const linear = classIsA(cls, 'Linear');
    return { linear, moduleList: classIsA(cls, 'ModuleList'), classes: cls.mro, ...(linear && weight && weight.shape.length === 2 ? { shape: [weight.shape[0]!, weight.shape[1]!] as const } : {}) };
  };
}

/**
 * Resolves an AWQModifier's `mappings` against `tree`: the recipe's, else
 * the registry's for the root class, else the default ones.
 * `quantized` says which modules a quantization modifier gives a scheme.
 * Throws {@link AwqMappingError}.
 */
export function resolveAwq(tree: ModuleTree, args: Readonly<Record<string, unknown>>, quantized: (name: string) => boolean): ResolvedAwq {
  const architecture = classOf(tree, 0).name;
  const own = Array.isArray(args.mappings);
  if (!own && AWQ_DYNAMIC_CLASSES.has(architecture)) {
    throw new AwqMappingError(`llm-compressor builds the AWQ mappings of "${architecture}" from its layer types at run time, which quantc does not; give the AWQModifier its own mappings`);
  }
  const registered = AWQ_MAPPINGS[architecture];
  const specs = own ? (args.mappings as unknown[]).map(toSpec) : (registered ?? DEFAULT);
  const source: AwqMappingSource = own ? 'recipe' : registered ? 'registry' : 'default';
  return { source, architecture, ...resolveAwqMappings(tree.names, specs, treeFacts(tree), quantized) };
}

/** Mappings as compressed lines for plans: `model.layers.{0..31}.input_layernorm → self_attn.{q,k,v}_proj`. */
export function awqMappingLines(mappings: readonly { smooth: string; balance: readonly string[] }[]): string[] {
  const relative = mappings.map((x) => {
    const prefix = `${parentOf(x.smooth)}.`;
    return compressNames(x.balance.map((b) => b.slice(prefix.length)))
      .map((g) => g.pattern)
      .join(', ');
  });
  return compressNames(
    mappings.map((x) => x.smooth),
    (i) => relative[i]!,
  ).map((g) => `${g.pattern} → ${g.key}`);
}
