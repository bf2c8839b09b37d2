/** Warns when grouped weights and grouped input activations use different group sizes. */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { isRecord } from '../../ir/quant-args.js';
import { pointer } from '../../parse/document.js';
import { argSpan, argsSites, type RuleContext } from '../context.js';

/** c-t QuantizationScheme: a UserWarning when GROUP weights and GROUP inputs differ in group_size. */
export function groupSizeMismatch(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (!isRecord(m.args.config_groups)) continue;
    for (const name of Object.keys(m.args.config_groups)) {
      const base = pointer('config_groups', name);
      const sites = argsSites(m).filter((s) => s.path.startsWith(`${base}/`));
      const w = sites.find((s) => s.role === 'weights' && s.strategy === 'group');
      const i = sites.find((s) => s.role === 'input_activations' && s.strategy === 'group');
      if (!w || !i || w.args.group_size === i.args.group_size) continue;
      out.push(
        warning(
          'group-size-mismatch',
          `Config group "${name}" quantizes weights in groups of ${String(w.args.group_size)} but input activations in groups of ${String(i.args.group_size)}; compressed-tensors warns that kernels may not support this.`,
          argSpan(ctx, m, `${i.path}/group_size`),
        ),
      );
    }
  }
  return out;
}
