/**
 * Targets and ignore entries that match no module. compressed-tensors warns
 * only for targets (and spuriously for targets shadowed by an earlier one);
 * an ignore entry with a typo is silent there.
 */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { patternHits } from '../match-index.js';
import { allPatterns, type LintContext } from './context.js';
import { looksLikeRegex } from './plain-looks-like-regex.js';
import { nameUnderOtherPrefix } from './name-under-other-prefix.js';
import { nearestName, nearestRegex } from './suggest.js';

/** Warns for each target or ignore entry that matches nothing (by name or class). */
export function unmatchedPatterns(ctx: LintContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const { pattern, role } of allPatterns(ctx)) {
    if (pattern.kind === 'regex' && !pattern.test) continue;
    if (patternHits(ctx.index, pattern).count > 0) continue;
    if (pattern.kind === 'plain' && (looksLikeRegex(pattern.text) || nameUnderOtherPrefix(ctx.tree, pattern.text).length > 0)) continue;
    const near = pattern.kind === 'plain' ? nearestName(ctx.tree, pattern.text) : nearestRegex(ctx.tree, pattern.body);
    const hint = near === undefined ? '' : ` Did you mean "${near}"?`;
    const what =
      pattern.kind === 'plain'
        ? `no module is named "${pattern.text}" and no module's class (or base class) is "${pattern.text}"`
        : `no module name matches it`;
    out.push(
      role === 'target'
        ? warning('target-matches-nothing', `The target "${pattern.text}" matches nothing: ${what}.${hint}`, pattern.origin)
        : warning('ignore-matches-nothing', `The ignore entry "${pattern.text}" matches nothing, so it ignores nothing: ${what}.${hint}`, pattern.origin),
    );
  }
  return out;
}
