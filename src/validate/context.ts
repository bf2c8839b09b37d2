/**
 * What a semantic rule sees: the schema-valid document, its spans, and the
 * modifiers flattened in execution order with their JSON pointers, plus
 * helpers to visit every QuantizationArgs a modifier spells out.
 */
import type { Diagnostic } from '../diagnostics.js';
import { pointer, spanFor, type RecipeDocument, type SpanTable } from '../parse/document.js';
import type { Span } from '../source.js';
import { inferStrategy, isRecord } from '../ir/quant-args.js';

/** One modifier in flattened execution order. */
export interface ModifierRef {
  readonly type: string;
  readonly args: Readonly<Record<string, unknown>>;
  /** Pointer of the modifier node; its arguments live under `${ptr}/args`. */
  readonly ptr: string;
  readonly index: number;
}

/** Input of every rule. */
export interface RuleContext {
  readonly document: RecipeDocument;
  readonly spans: SpanTable;
  readonly modifiers: readonly ModifierRef[];
}

/** A semantic rule: one assertion, one diagnostic code, one file. */
export type Rule = (ctx: RuleContext) => Diagnostic[];

/** Builds the context, flattening stages and groups like `Recipe.from_dict`. */
export function ruleContext(document: RecipeDocument, spans: SpanTable): RuleContext {
  const modifiers: ModifierRef[] = [];
  document.stages.forEach((stage, s) =>
    stage.groups.forEach((group, g) =>
      group.modifiers.forEach((m, i) => {
        modifiers.push({ type: m.type, args: m.args, ptr: pointer('stages', s, 'groups', g, 'modifiers', i), index: modifiers.length });
      }),
    ),
  );
  return { document, spans, modifiers };
}

/** Span of a modifier's argument: its key or its value; the modifier's name when the argument is absent. */
export function argSpan(ctx: RuleContext, m: ModifierRef, path: string, prefer: 'key' | 'value' = 'value'): Span | undefined {
  return spanFor(ctx.spans, `${m.ptr}/args${path}`, prefer);
}

/** Span of the modifier's name. */
export function modifierSpan(ctx: RuleContext, m: ModifierRef): Span | undefined {
  return spanFor(ctx.spans, `${m.ptr}/type`);
}

/** Which tensor a QuantizationArgs describes. */
export type ArgsRole = 'weights' | 'input_activations' | 'output_activations' | 'kv_cache_scheme';

/** One QuantizationArgs written in a modifier, with its pointer relative to the modifier's args. */
export interface ArgsSite {
  readonly role: ArgsRole;
  readonly args: Readonly<Record<string, unknown>>;
  readonly path: string;
  /** The effective strategy after c-t inference. */
  readonly strategy: string | null;
}

/** Every QuantizationArgs spelled out in `config_groups` and `kv_cache_scheme`. */
export function argsSites(m: ModifierRef): ArgsSite[] {
  const out: ArgsSite[] = [];
  const site = (role: ArgsRole, args: unknown, path: string): void => {
    if (isRecord(args)) out.push({ role, args, path, strategy: inferStrategy(args.strategy, args.group_size) });
  };
  if (isRecord(m.args.config_groups)) {
    for (const [name, scheme] of Object.entries(m.args.config_groups)) {
      if (!isRecord(scheme)) continue;
      for (const role of ['weights', 'input_activations', 'output_activations'] as const) {
        site(role, scheme[role], pointer('config_groups', name, role));
      }
    }
  }
  site('kv_cache_scheme', m.args.kv_cache_scheme, pointer('kv_cache_scheme'));
  return out;
}

/** The field of an args site, as a pointer relative to the modifier's args. */
export function fieldPath(s: ArgsSite, field: string): string {
  return `${s.path}${pointer(field)}`;
}
