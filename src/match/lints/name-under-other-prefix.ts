/**
 * An exact name that exists only under another prefix: `lm_head` in a model
 * whose head is `language_model.lm_head`. Plain patterns are full qualified
 * names in compressed-tensors, never suffixes.
 */
import { warning, type Diagnostic } from '../../diagnostics.js';
import type { ModuleTree } from '../../model/module-tree.js';
import { patternHits } from '../match-index.js';
import { allPatterns, type LintContext } from './context.js';

/** Module names that end with `.text` (at most `limit`), when `text` itself is not a module name. */
export function nameUnderOtherPrefix(tree: ModuleTree, text: string, limit = 3): string[] {
  if (text === '' || /[^A-Za-z0-9_.]/.test(text)) return [];
  const suffix = `.${text}`;
  const out: string[] = [];
  for (const n of tree.names) {
    if (n.endsWith(suffix)) {
      out.push(n);
      if (out.length >= limit) break;
    }
  }
  return out;
}

/** Warns for plain patterns that match nothing but name a module under a longer prefix. */
export function nameUnderOtherPrefixLint(ctx: LintContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const { pattern, role } of allPatterns(ctx)) {
    if (pattern.kind !== 'plain' || patternHits(ctx.index, pattern).count > 0) continue;
    const found = nameUnderOtherPrefix(ctx.tree, pattern.text);
    if (found.length === 0) continue;
    const first = found[0]!;
    const escaped = pattern.text.replace(/\./g, '\\.');
    out.push(
      warning(
        'name-under-other-prefix',
        `The ${role === 'target' ? 'target' : 'ignore entry'} "${pattern.text}" matches nothing: plain names must be full module names, and this model has "${first}"${found.length > 1 ? ' and others' : ''}. Did you mean "${first}" or "re:.*\\.${escaped}$"?`,
        pattern.origin,
      ),
    );
  }
  return out;
}
