/** Asserts `group_size` and the group strategies go together (c-t QuantizationArgs validator). */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, argsSites, fieldPath, type RuleContext } from '../context.js';

const GROUPED = new Set(['group', 'tensor_group']);

/** group/tensor_group need group_size > 0; group_size > 0 needs one of them; group_size < -1 (or 0 without a strategy) is invalid. */
export function groupSizeStrategy(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    for (const s of argsSites(m)) {
      const gs = s.args.group_size;
      // c-t rejects group_size < -1 outright, and 0 when it has to infer the strategy from it.
      if (typeof gs === 'number' && (gs < -1 || (gs === 0 && s.strategy === null))) {
        out.push(error('group-size-strategy', `Invalid group size ${gs} in "${s.role}"; use a positive size, or -1 for channel.`, argSpan(ctx, m, fieldPath(s, 'group_size'))));
      } else if (s.strategy !== null && GROUPED.has(s.strategy) && !(typeof gs === 'number' && gs > 0)) {
        out.push(
          error('group-size-strategy', `Strategy "${s.strategy}" in "${s.role}" requires group_size to be set to a positive value.`, argSpan(ctx, m, fieldPath(s, 'strategy'))),
        );
      } else if (typeof gs === 'number' && gs > 0 && s.strategy !== null && !GROUPED.has(s.strategy)) {
        out.push(
          error('group-size-strategy', `"group_size" in "${s.role}" requires strategy "group" or "tensor_group", not "${s.strategy}".`, argSpan(ctx, m, fieldPath(s, 'group_size'), 'key')),
        );
      }
    }
  }
  return out;
}
