/** Asserts QuIP and SpinQuant rotations are not learnable (not implemented upstream). */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, type RuleContext } from '../context.js';

/** llm-compressor: "learnable is not supported right now" (NotImplementedError). */
export function learnableUnsupported(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if ((m.type === 'QuIPModifier' || m.type === 'SpinQuantModifier') && m.args.learnable === true) {
      out.push(error('learnable-unsupported', `${m.type}: "learnable" is not supported by llm-compressor.`, argSpan(ctx, m, '/learnable')));
    }
  }
  return out;
}
