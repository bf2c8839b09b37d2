/** Asserts activation ordering is only set on weights. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { normalizeActorder } from '../../ir/quant-args.js';
import { argSpan, argsSites, fieldPath, type RuleContext } from '../context.js';

/** c-t: "Cannot apply actorder to input activations" (and output). */
export function activationActorder(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    for (const s of argsSites(m)) {
      if (s.role === 'weights' || normalizeActorder(s.args.actorder) === null) continue;
      const what = s.role === 'output_activations' ? 'output activations' : s.role === 'kv_cache_scheme' ? 'the KV cache' : 'input activations';
      out.push(error('activation-actorder', `Cannot apply actorder to ${what}.`, argSpan(ctx, m, fieldPath(s, 'actorder'), 'key')));
    }
  }
  return out;
}
