/** Asserts AWQ duo scaling is paired with per-channel or per-group weights. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { resolveQuantization } from '../../ir/resolve.js';
import { argSpan, modifierSpan, type RuleContext } from '../context.js';
import { QUANTIZATION_MODIFIERS } from '../modifiers.js';

/** llm-compressor: "duo_scaling is only supported with per-channel quantization strategies (group or channel)". */
export function duoScalingTensor(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (m.type !== 'AWQModifier' || m.args.duo_scaling === false) continue;
    const next = ctx.modifiers.find((x) => x.index > m.index && QUANTIZATION_MODIFIERS.has(x.type));
    if (!next) continue;
    const tensor = resolveQuantization(next.args).groups.find((g) => g.scheme.weights?.strategy === 'tensor');
    if (!tensor) continue;
    out.push(
      error('duo-scaling-tensor', `AWQ duo_scaling is only supported with group or channel weight strategies, but "${tensor.name}" of ${next.type} uses "tensor"; set "duo_scaling: false".`, m.args.duo_scaling === undefined ? modifierSpan(ctx, m) : argSpan(ctx, m, '/duo_scaling'), [
        { message: `${next.type} is here.`, span: modifierSpan(ctx, next) },
      ]),
    );
  }
  return out;
}
