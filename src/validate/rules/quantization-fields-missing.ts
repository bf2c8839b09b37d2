/** Asserts a QuantizationModifier says what to quantize. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { modifierSpan, type RuleContext } from '../context.js';

function isDefaultTargets(t: unknown): boolean {
  return t === undefined || t === 'Linear' || (Array.isArray(t) && t.length === 1 && t[0] === 'Linear');
}

/** llm-compressor: "QuantizationModifier requires that quantization fields be specified" (`has_config()` false). */
export function quantizationFieldsMissing(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (m.type !== 'QuantizationModifier') continue;
    const a = m.args;
    const ignoreEmpty = a.ignore === undefined || (Array.isArray(a.ignore) && a.ignore.length === 0);
    if (a.config_groups != null || a.scheme != null || a.kv_cache_scheme != null || !ignoreEmpty || !isDefaultTargets(a.targets)) continue;
    out.push(
      error('quantization-fields-missing', 'QuantizationModifier requires that quantization fields be specified: set "scheme", "config_groups" or "kv_cache_scheme".', modifierSpan(ctx, m)),
    );
  }
  return out;
}
