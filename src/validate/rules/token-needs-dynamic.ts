/** Asserts the token strategy is dynamic. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, argsSites, fieldPath, type RuleContext } from '../context.js';

/** c-t: "Cannot perform static token quantization, please use `dynamic=True`". */
export function tokenNeedsDynamic(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    for (const s of argsSites(m)) {
      if (s.strategy === 'token' && s.args.dynamic !== true && s.args.dynamic !== 'local') {
        out.push(error('token-needs-dynamic', `Cannot perform static token quantization in "${s.role}"; set "dynamic: true".`, argSpan(ctx, m, fieldPath(s, 'strategy'))));
      }
    }
  }
  return out;
}
