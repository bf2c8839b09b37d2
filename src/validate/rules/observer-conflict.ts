/** Asserts observers are given either individually or as one mapping. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, type RuleContext } from '../context.js';
import { QUANTIZATION_MODIFIERS } from '../modifiers.js';

const INDIVIDUAL = ['weight_observer', 'input_observer', 'output_observer'];

/** QuantizationMixin: "Cannot specify both individual observer parameters … and observer dict". */
export function observerConflict(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (!QUANTIZATION_MODIFIERS.has(m.type) || m.args.observer == null) continue;
    const given = INDIVIDUAL.filter((k) => m.args[k] != null);
    if (given.length === 0) continue;
    out.push(
      error('observer-conflict', `Cannot specify both individual observer parameters (${given.join(', ')}) and the "observer" mapping.`, argSpan(ctx, m, '/observer', 'key'), [
        { message: `"${given[0]}" is set here.`, span: argSpan(ctx, m, `/${given[0]}`, 'key') },
      ]),
    );
  }
  return out;
}
