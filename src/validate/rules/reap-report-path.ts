/** Asserts REAP's report path names a JSON file. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, type RuleContext } from '../context.js';

/** llm-compressor requires `report_path` to end in `.json`. */
export function reapReportPath(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    const p = m.args.report_path;
    if (m.type !== 'REAPPruningModifier' || typeof p !== 'string' || p.endsWith('.json')) continue;
    out.push(error('reap-report-path', `REAPPruningModifier "report_path" must end in ".json", got "${p}".`, argSpan(ctx, m, '/report_path')));
  }
  return out;
}
