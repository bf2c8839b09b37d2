/** Warns that GPTQ's group activation ordering is deprecated. */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { normalizeActorder } from '../../ir/quant-args.js';
import { argSpan, type RuleContext } from '../context.js';

/** llm-compressor: "ActivationOrdering.GROUP is deprecated and will be removed in a future release. Use default actorder='static' instead." */
export function actorderGroupDeprecated(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (m.type !== 'GPTQModifier' || normalizeActorder(m.args.actorder) !== 'group') continue;
    out.push(
      warning('actorder-group-deprecated', `GPTQModifier actorder "${String(m.args.actorder)}" (group) is deprecated; use the default "static" instead.`, argSpan(ctx, m, '/actorder')),
    );
  }
  return out;
}
