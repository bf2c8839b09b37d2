/** Warns about deprecated modifier aliases. */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { modifierSpan, type RuleContext } from '../context.js';

/** LogarithmicEqualizationModifier is a deprecated SmoothQuantModifier with `algorithm: log_equalization`. */
export function deprecatedModifier(ctx: RuleContext): Diagnostic[] {
  return ctx.modifiers
    .filter((m) => m.type === 'LogarithmicEqualizationModifier')
    .map((m) =>
      warning(
        'deprecated-modifier',
        '"LogarithmicEqualizationModifier" is deprecated; use "SmoothQuantModifier" with "algorithm: log_equalization".',
        modifierSpan(ctx, m),
      ),
    );
}
