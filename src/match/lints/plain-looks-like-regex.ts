/**
 * A plain pattern that looks like a regex but lacks `re:`. compressed-tensors
 * compares plain strings for exact equality, so `.*lm_head` or
 * `model\.layers\.0` can never match anything, silently.
 */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { compilePattern } from '../pattern.js';
import { patternHits } from '../match-index.js';
import { allPatterns, type LintContext } from './context.js';

/** True when a plain string holds characters no module or class name has but regexes do. */
export function looksLikeRegex(text: string): boolean {
  return /[\\*+?^$[\](){}|]/.test(text);
}

/** Warns for plain targets/ignore entries that look like regexes and match nothing. */
export function plainLooksLikeRegex(ctx: LintContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const { pattern, role } of allPatterns(ctx)) {
    if (pattern.kind !== 'plain' || !looksLikeRegex(pattern.text)) continue;
    if (patternHits(ctx.index, pattern).count > 0) continue;
    const fixed = compilePattern({ text: `re:${pattern.text}`, origin: undefined }).value;
    const n = fixed.test ? patternHits(ctx.index, fixed).count : 0;
    const effect = n > 0 ? ` With the prefix it would match ${n} module${n === 1 ? '' : 's'}.` : '';
    out.push(
      warning(
        'plain-pattern-looks-like-regex',
        `The ${role === 'target' ? 'target' : 'ignore entry'} "${pattern.text}" looks like a regular expression but has no "re:" prefix, so it is compared as an exact module or class name and matches nothing.${effect} Did you mean "re:${pattern.text}"?`,
        pattern.origin,
      ),
    );
  }
  return out;
}
