/** Asserts a quantization modifier sets `scheme` or `config_groups`, not both. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, type RuleContext } from '../context.js';
import { QUANTIZATION_MODIFIERS } from '../modifiers.js';

/** QuantizationMixin: "Please specify either `scheme` or `config_groups`". */
export function schemeWithConfigGroups(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (!QUANTIZATION_MODIFIERS.has(m.type)) continue;
    if (m.args.scheme == null || m.args.config_groups == null) continue;
    out.push(
      error('scheme-with-config-groups', `"${m.type}" sets both "scheme" and "config_groups"; specify either one.`, argSpan(ctx, m, '/scheme', 'key'), [
        { message: '"config_groups" is set here.', span: argSpan(ctx, m, '/config_groups', 'key') },
      ]),
    );
  }
  return out;
}
