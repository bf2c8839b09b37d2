/**
 * `resolve_quantization_config` of llm-compressor's QuantizationMixin: turns a
 * modifier's `scheme` / `config_groups` / `targets` / `ignore` /
 * `kv_cache_scheme` / observer arguments into the QuantizationConfig it
 * attaches, with the source span of every target and ignore entry.
 */
import { pointer, spanFor, type SpanTable } from '../parse/document.js';
import type { Span } from '../source.js';
import { presetScheme } from './presets.js';
import { isRecord, resolveQuantArgs } from './quant-args.js';
import type { ConfigGroup, PatternRef, QuantizationArgs, QuantizationScheme, ResolvedQuantization } from './types.js';

/** Where the modifier's arguments are in the span table (absent: no spans). */
export interface ArgsOrigin {
  readonly spans: SpanTable;
  /** Pointer of the modifier's `args` mapping. */
  readonly ptr: string;
}

function at(origin: ArgsOrigin | undefined, path: string): Span | undefined {
  return origin ? spanFor(origin.spans, `${origin.ptr}${path}`) : undefined;
}

/** A string-or-list argument as a list (the mixin's `targets` validator). */
export function asList(value: unknown, fallback: readonly string[]): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.map(String);
  return [...fallback];
}

function patterns(texts: readonly string[], origin: ArgsOrigin | undefined, path: string, single: boolean): PatternRef[] {
  return texts.map((text, i) => ({ text, origin: at(origin, single ? path : `${path}/${i}`) }));
}

function args(raw: unknown): QuantizationArgs | null {
  return isRecord(raw) ? resolveQuantArgs(raw) : null;
}

/** compressed-tensors QuantizationScheme from a (validated) mapping. */
export function resolveScheme(raw: Readonly<Record<string, unknown>>): QuantizationScheme {
  return {
    targets: asList(raw.targets, []),
    weights: args(raw.weights),
    input_activations: args(raw.input_activations),
    output_activations: args(raw.output_activations),
    format: typeof raw.format === 'string' ? raw.format : null,
  };
}

function withObserver(a: QuantizationArgs | null, observer: unknown): QuantizationArgs | null {
  return a && typeof observer === 'string' ? { ...a, observer } : a;
}

/** Applies `weight_observer`/`input_observer`/`output_observer` or the `observer` mapping to every group. */
function applyObservers(scheme: QuantizationScheme, modArgs: Readonly<Record<string, unknown>>): QuantizationScheme {
  const dict = isRecord(modArgs.observer) ? modArgs.observer : {};
  return {
    ...scheme,
    weights: withObserver(scheme.weights, modArgs.weight_observer ?? dict.weights),
    input_activations: withObserver(scheme.input_activations, modArgs.input_observer ?? dict.input),
    output_activations: withObserver(scheme.output_activations, modArgs.output_observer ?? dict.output),
  };
}

/** Resolves a QuantizationMixin modifier's config; unknown presets are skipped (validation reports them). */
export function resolveQuantization(modArgs: Readonly<Record<string, unknown>>, origin?: ArgsOrigin): ResolvedQuantization {
  const groups: ConfigGroup[] = [];
  const targets = asList(modArgs.targets, ['Linear']);
  const targetRefs = patterns(targets, origin, '/targets', typeof modArgs.targets === 'string');
  const push = (name: string, preset: string | null, scheme: QuantizationScheme, refs: PatternRef[], path: string): void => {
    groups.push({ name, preset, scheme: applyObservers(scheme, modArgs), targets: refs, origin: at(origin, path) });
  };
  if (isRecord(modArgs.config_groups)) {
    for (const [name, raw] of Object.entries(modArgs.config_groups)) {
      if (!isRecord(raw)) continue;
      const scheme = resolveScheme(raw);
      const base = `/config_groups${pointer(name)}`;
      push(name, null, scheme, patterns(scheme.targets, origin, `${base}/targets`, typeof raw.targets === 'string'), base);
    }
  } else if (typeof modArgs.scheme === 'string') {
    const scheme = presetScheme(modArgs.scheme, targets);
    if (scheme) push('group_0', modArgs.scheme.toUpperCase(), scheme, targetRefs, '/scheme');
  } else if (isRecord(modArgs.scheme)) {
    let i = 0;
    for (const [name, t] of Object.entries(modArgs.scheme)) {
      const list = asList(t, []);
      const scheme = presetScheme(name, list);
      const path = `/scheme${pointer(name)}`;
      if (scheme) push(`group_${i}`, name.toUpperCase(), scheme, patterns(list, origin, path, typeof t === 'string'), path);
      i++;
    }
  } else {
    push('group_0', null, { targets, weights: null, input_activations: null, output_activations: null, format: null }, targetRefs, '/targets');
  }
  const ignore = asList(modArgs.ignore, []);
  return {
    groups,
    ignore: patterns(ignore, origin, '/ignore', typeof modArgs.ignore === 'string'),
    kvCacheScheme: args(modArgs.kv_cache_scheme),
  };
}

/** llm-compressor's computed `requires_calibration_data` for a resolved config. */
export function quantizationNeedsCalibration(q: ResolvedQuantization): boolean {
  if (q.kvCacheScheme) return true;
  return q.groups.some(
    ({ scheme }) =>
      scheme.weights?.observer === 'imatrix_mse' ||
      (scheme.input_activations !== null && (scheme.input_activations.dynamic === false || scheme.input_activations.dynamic === 'local')) ||
      (scheme.output_activations !== null && scheme.output_activations.dynamic !== true),
  );
}
