/** Warns when the expert coverage policy is set in a recipe that calibrates nothing. */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { quantizationNeedsCalibration, resolveQuantization } from '../../ir/resolve.js';
import { pointer, spanFor } from '../../parse/document.js';
import type { ModifierRef, RuleContext } from '../context.js';
import { CALIBRATED_MODIFIERS, QUANTIZATION_MODIFIERS } from '../modifiers.js';

/** The settings that only matter while calibration data flows through the experts. */
const COVERAGE_KEYS = ['min_expert_tokens', 'on_low_coverage'] as const;

/** Whether llm-compressor runs the modifier in the calibrated pipeline (the IR computes the same). */
function calibrates(m: ModifierRef): boolean {
  const given = m.args.requires_calibration_data;
  const declared = typeof given === 'boolean' ? given : CALIBRATED_MODIFIERS.has(m.type);
  return declared || (QUANTIZATION_MODIFIERS.has(m.type) && quantizationNeedsCalibration(resolveQuantization(m.args)));
}

/**
 * Expert coverage is counted from calibration tokens; a recipe whose every
 * modifier is data-free never measures it, so the policy can never apply.
 */
export function moeCoverageUnused(ctx: RuleContext): Diagnostic[] {
  const moe = ctx.document.moe;
  if (moe === undefined) return [];
  const written = COVERAGE_KEYS.filter((k) => moe[k] !== undefined);
  if (written.length === 0 || ctx.modifiers.some(calibrates)) return [];
  const names = written.map((k) => `"${k}"`).join(' and ');
  return [
    warning(
      'moe-coverage-unused',
      `${names} ${written.length === 1 ? 'has' : 'have'} no effect: no modifier of this recipe uses calibration data, so no expert's coverage is ever counted.`,
      spanFor(ctx.spans, pointer('moe', written[0]!), 'key'),
    ),
  ];
}
