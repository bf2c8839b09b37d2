/** Asserts dynamic quantization uses a strategy that supports it. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, argsSites, fieldPath, type RuleContext } from '../context.js';

const DYNAMIC = ['token', 'tensor', 'tensor_group', 'group'];

/** c-t: dynamic needs token/tensor/tensor_group/group; `dynamic: local` only tensor_group. */
export function dynamicStrategy(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    for (const s of argsSites(m)) {
      const dynamic = s.args.dynamic;
      if (dynamic === 'local' && s.strategy !== 'tensor_group') {
        out.push(error('dynamic-strategy', `"dynamic: local" in "${s.role}" is only supported for strategy "tensor_group", not "${s.strategy}".`, argSpan(ctx, m, fieldPath(s, 'dynamic'))));
      } else if (dynamic === true && !DYNAMIC.includes(s.strategy ?? '')) {
        out.push(error('dynamic-strategy', `One of (${DYNAMIC.join(', ')}) must be used for dynamic quantization in "${s.role}", not "${s.strategy}".`, argSpan(ctx, m, fieldPath(s, 'dynamic'))));
      }
    }
  }
  return out;
}
