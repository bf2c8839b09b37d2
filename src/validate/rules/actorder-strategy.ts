/** Asserts group activation ordering is only used with group strategies. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { normalizeActorder } from '../../ir/quant-args.js';
import { argSpan, argsSites, fieldPath, type RuleContext } from '../context.js';

/** c-t: actorder "group" needs strategy group or tensor_group. */
export function actorderStrategy(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    for (const s of argsSites(m)) {
      if (s.role !== 'weights' || normalizeActorder(s.args.actorder) !== 'group') continue;
      if (s.strategy === 'group' || s.strategy === 'tensor_group') continue;
      out.push(
        error('actorder-strategy', `actorder "group" requires strategy "group" or "tensor_group", not "${s.strategy}".`, argSpan(ctx, m, fieldPath(s, 'actorder'))),
      );
    }
  }
  return out;
}
