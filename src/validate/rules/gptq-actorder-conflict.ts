/** Asserts GPTQModifier.actorder agrees with the actorder its config groups set. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { normalizeActorder } from '../../ir/quant-args.js';
import { argSpan, argsSites, fieldPath, type RuleContext } from '../context.js';

/** llm-compressor: "Cannot resolve activation ordering when both … are provided and differ". */
export function gptqActorderConflict(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (m.type !== 'GPTQModifier' || m.args.actorder === undefined) continue;
    const mine = normalizeActorder(m.args.actorder);
    for (const s of argsSites(m)) {
      if (s.role !== 'weights') continue;
      const theirs = normalizeActorder(s.args.actorder);
      if (theirs === null || theirs === mine) continue;
      out.push(
        error(
          'gptq-actorder-conflict',
          `Cannot resolve activation ordering: GPTQModifier.actorder is "${String(m.args.actorder)}" but the scheme's weights set "${String(s.args.actorder)}".`,
          argSpan(ctx, m, '/actorder'),
          [{ message: 'The scheme sets actorder here.', span: argSpan(ctx, m, fieldPath(s, 'actorder')) }],
        ),
      );
    }
  }
  return out;
}
