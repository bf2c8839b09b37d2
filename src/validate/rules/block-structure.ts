/** Asserts the block strategy and `block_structure` are given together. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, argsSites, fieldPath, type RuleContext } from '../context.js';

/** c-t: "Block strategy requires block structure" / "Block structure requires block strategy". */
export function blockStructure(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    for (const s of argsSites(m)) {
      const has = s.args.block_structure != null;
      if (s.strategy === 'block' && !has) {
        out.push(error('block-structure', `Block strategy in "${s.role}" requires "block_structure", e.g. [128, 128].`, argSpan(ctx, m, fieldPath(s, 'strategy'))));
      } else if (s.strategy !== 'block' && has) {
        out.push(error('block-structure', `"block_structure" in "${s.role}" requires strategy "block".`, argSpan(ctx, m, fieldPath(s, 'block_structure'), 'key')));
      }
    }
  }
  return out;
}
