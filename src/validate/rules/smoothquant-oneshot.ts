/** Asserts SmoothQuant runs one-shot (no start/end epochs). */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, type RuleContext } from '../context.js';

/** llm-compressor: "SmoothQuantModifier can only be applied during one-shot. Expected end to be None or -1". */
export function smoothquantOneshot(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (m.type !== 'SmoothQuantModifier' && m.type !== 'LogarithmicEqualizationModifier') continue;
    for (const field of ['start', 'end']) {
      const v = m.args[field];
      if (v == null || v === -1) continue;
      out.push(error('smoothquant-oneshot', `${m.type} can only be applied during one-shot; expected "${field}" to be null or -1, got ${String(v)}.`, argSpan(ctx, m, `/${field}`)));
    }
  }
  return out;
}
