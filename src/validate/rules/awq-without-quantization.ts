/** Asserts every AWQModifier is followed by a quantization modifier (llm-compressor's recipe validator). */
import { error, type Diagnostic } from '../../diagnostics.js';
import { modifierSpan, type RuleContext } from '../context.js';
import { QUANTIZATION_MODIFIERS } from '../modifiers.js';

/** `Recipe._validate_awq`: AWQ only smooths; a later QuantizationMixin modifier must quantize. */
export function awqWithoutQuantization(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (m.type !== 'AWQModifier') continue;
    if (ctx.modifiers.some((later) => later.index > m.index && QUANTIZATION_MODIFIERS.has(later.type))) continue;
    const names = ctx.modifiers.map((x) => x.type).join(', ');
    out.push(
      error(
        'awq-without-quantization',
        `Recipe includes AWQModifier with no subsequent quantization modifier: [${names}]. AWQ must be run with a subsequent quantization modifier.`,
        modifierSpan(ctx, m),
      ),
    );
  }
  return out;
}
