/** Asserts the `observer` mapping only names weights, input and output. */
import { error, suggestion, type Diagnostic } from '../../diagnostics.js';
import { isRecord } from '../../ir/quant-args.js';
import { pointer } from '../../parse/document.js';
import { argSpan, type RuleContext } from '../context.js';
import { QUANTIZATION_MODIFIERS } from '../modifiers.js';

const KEYS = ['weights', 'input', 'output'];

/** QuantizationMixin: "Invalid observer key '{key}'. Valid keys are: {'weights','input','output'}". */
export function observerDict(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (!QUANTIZATION_MODIFIERS.has(m.type) || !isRecord(m.args.observer)) continue;
    for (const key of Object.keys(m.args.observer)) {
      if (KEYS.includes(key)) continue;
      out.push(
        error('observer-dict', `Invalid observer key "${key}"; valid keys are "weights", "input" and "output".${suggestion(key, KEYS)}`, argSpan(ctx, m, `/observer${pointer(key)}`, 'key')),
      );
    }
  }
  return out;
}
