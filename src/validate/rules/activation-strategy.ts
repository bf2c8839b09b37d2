/** Asserts activations use a strategy compressed-tensors supports for them. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, argsSites, fieldPath, type RuleContext } from '../context.js';

const ALLOWED = ['token', 'tensor', 'group', 'tensor_group', 'attn_head'];

/** c-t QuantizationScheme: "Using {strategy} strategy is not supported for activation quantization". */
export function activationStrategy(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    for (const s of argsSites(m)) {
      if (s.role !== 'input_activations' && s.role !== 'output_activations') continue;
      if (s.strategy === null || ALLOWED.includes(s.strategy)) continue;
      const at = argSpan(ctx, m, fieldPath(s, s.args.strategy != null ? 'strategy' : 'group_size'));
      out.push(error('activation-strategy', `Using ${s.strategy} strategy is not supported for activation quantization ("${s.role}").`, at));
    }
  }
  return out;
}
