/** Asserts REAP's expert sparsity is a fraction strictly between 0 and 1. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, type RuleContext } from '../context.js';

/** llm-compressor: "sparsity must be in (0, 1), got …". */
export function reapSparsityRange(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    const s = m.args.sparsity;
    if (m.type !== 'REAPPruningModifier' || typeof s !== 'number' || (s > 0 && s < 1)) continue;
    out.push(error('reap-sparsity-range', `REAPPruningModifier sparsity must be in (0, 1), got ${s}.`, argSpan(ctx, m, '/sparsity')));
  }
  return out;
}
