/**
 * The recipe document: what both front ends (the quantc DSL and
 * llm-compressor YAML/JSON) produce, and what `schemas/recipe.schema.json`
 * validates. Plain JSON, no spans; spans live beside it in a SpanTable keyed
 * by JSON pointer, so schema errors can point at the exact token or node.
 */
import type { Span } from '../source.js';

/** A whole recipe. Stage order is execution order (llm-compressor flattens stages). */
export interface RecipeDocument {
  /** DSL header / YAML `quantc.recipe`: identity of the recipe. */
  readonly recipe?: RecipeHeader;
  /** MoE calibration settings (DSL `moe { … }`, YAML `quantc.moe`). */
  readonly moe?: MoeDocument;
  readonly stages: readonly StageDocument[];
  /** llm-compressor's top-level `args` (read, never used by llm-compressor). */
  readonly args?: Readonly<Record<string, unknown>>;
}

/** `recipe NAME version X` and an optional target model. */
export interface RecipeHeader {
  readonly name?: string;
  readonly version?: string;
  readonly model?: string;
}

/** One `<name>_stage`. */
export interface StageDocument {
  readonly name: string;
  readonly groups: readonly GroupDocument[];
}

/** One `<name>_modifiers` mapping inside a stage. */
export interface GroupDocument {
  readonly name: string;
  readonly modifiers: readonly ModifierDocument[];
}

/** One `ModifierClassName: {args}` entry. Args are raw JSON values as written. */
export interface ModifierDocument {
  readonly type: string;
  readonly args: Readonly<Record<string, unknown>>;
}

/** What happens when an MoE-like block has no calibration rewrite. */
export type UnsupportedMoePolicy = 'error' | 'warning';

/**
 * What happens to an expert whose observers saw fewer than `min_expert_tokens`
 * calibration tokens: stop (`error`), report it and keep its statistics
 * (`warning`), or quantize it data-free (`fallback`). Never silent.
 */
export type LowCoveragePolicy = 'error' | 'warning' | 'fallback';

/** MoE calibration settings. */
export interface MoeDocument {
  /** llm-compressor's `moe_calibrate_all_experts` (default true). */
  readonly calibrate_all_experts?: boolean;
  /** Severity of `moe-unsupported` (default `error`). */
  readonly on_unsupported?: UnsupportedMoePolicy;
  /** Fewest calibration tokens an expert's observers must see (integer ≥ 1, default 1). */
  readonly min_expert_tokens?: number;
  /** What happens to an expert below `min_expert_tokens` (default `error`). */
  readonly on_low_coverage?: LowCoveragePolicy;
  /** Calibration rewrites declared for MoE classes quantc does not know. */
  readonly rewrites?: readonly MoeRewriteDocument[];
}

/**
 * A declared calibration rewrite for one MoE block class. Field names follow
 * transformers' `@use_experts_implementation` keyword arguments where they
 * describe the fused experts layout.
 */
export interface MoeRewriteDocument {
  /** The MoE block class, e.g. `Glm4MoeLiteMoE`. */
  readonly class: string;
  /** Attribute holding the experts container (default `experts`). */
  readonly experts?: string;
  /** Attribute holding the router (default `gate`). */
  readonly router?: string;
  /** Attribute holding shared experts, if any. */
  readonly shared_experts?: string;
  /** `fused` (3-D parameters, unpacked into Linear) or `module_list` (already Linear MLPs). */
  readonly experts_layout?: 'fused' | 'module_list';
  /** Fused layout: gate and up concatenated in `gate_up_proj` (default true). */
  readonly is_concatenated?: boolean;
  /** Fused layout: parameters stored `[E, in, out]` instead of `[E, out, in]` (default false). */
  readonly is_transposed?: boolean;
  /** Fused layout: experts carry biases (default false). */
  readonly has_bias?: boolean;
  /** Experts have a gate projection (default true). */
  readonly has_gate?: boolean;
  /** Router kind. */
  readonly router_kind?: 'softmax_topk' | 'sigmoid_group_topk';
}

/** Where one document node came from. `key` is the key/name token, `value` the value. */
export interface NodeSpans {
  readonly key?: Span;
  readonly value: Span;
}

/** JSON pointer (RFC 6901) of a document node → its source spans. */
export type SpanTable = ReadonlyMap<string, NodeSpans>;

/** Builds a JSON pointer from path segments. */
export function pointer(...segments: readonly (string | number)[]): string {
  return segments.map((s) => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

/** The closest span for a pointer: the node itself, else its nearest ancestor. */
export function spanFor(spans: SpanTable, ptr: string, prefer: 'key' | 'value' = 'value'): Span | undefined {
  let p = ptr;
  for (;;) {
    const s = spans.get(p);
    if (s) return prefer === 'key' ? s.key ?? s.value : s.value;
    if (p === '') return undefined;
    p = p.slice(0, p.lastIndexOf('/'));
  }
}

/** A parsed recipe: the document, its spans, and the sources it was read from. */
export interface ParsedRecipe {
  readonly document: RecipeDocument;
  readonly spans: SpanTable;
  /** Every source read (the recipe and its imports), by path, for code frames. */
  readonly sources: ReadonlyMap<string, string>;
}
