/** Asserts the OWL sparsity profile comes with owl_m and owl_lmbda, all or none. */
import { error, type Diagnostic } from '../../diagnostics.js';
import { argSpan, modifierSpan, type RuleContext } from '../context.js';

const FIELDS = ['sparsity_profile', 'owl_m', 'owl_lmbda'];

/** llm-compressor: 'Must provide all of `profile="owl"`, `owl_m` and `owl_lmbda` or none'. */
export function owlProfile(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const m of ctx.modifiers) {
    if (m.type !== 'SparseGPTModifier' && m.type !== 'WandaPruningModifier') continue;
    const given = FIELDS.filter((f) => m.args[f] != null);
    if (given.length === 0 || given.length === FIELDS.length) continue;
    const missing = FIELDS.filter((f) => !given.includes(f));
    out.push(
      error('owl-profile', `Provide all of "sparsity_profile: owl", "owl_m" and "owl_lmbda", or none; missing ${missing.map((f) => `"${f}"`).join(', ')}.`, argSpan(ctx, m, `/${given[0]}`, 'key') ?? modifierSpan(ctx, m)),
    );
  }
  return out;
}
