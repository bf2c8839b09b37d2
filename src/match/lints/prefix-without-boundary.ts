/**
 * A regex that stops in the middle of a name component: `re:.*mlp.gate`
 * matches the router `mlp.gate` and also `mlp.gate_proj`, because
 * `re.match` only anchors the start.
 */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { summarizeNames } from '../compress-names.js';
import { compilePattern } from '../pattern.js';
import { patternHits } from '../match-index.js';
import { allPatterns, type LintContext } from './context.js';
import { leadingFlags, scanPythonRegex } from './regex-scan.js';

/** The body with `(?![A-Za-z0-9_])` after it (global flags kept first), or undefined when it already ends open or anchored. */
export function withEndBoundary(body: string): string | undefined {
  const tokens = scanPythonRegex(body);
  const last = tokens[tokens.length - 1];
  if (!last) return undefined;
  const tail = body.slice(last.start);
  const beforeLast = tokens.length > 1 ? body.slice(tokens[tokens.length - 2]!.start, last.start) : '';
  if (tail === '$' || tail === '\\Z' || tail === '\\z' || /^[0-9]$/.test(tail)) return undefined;
  if ((tail === '*' || tail === '+') && beforeLast === '.') return undefined;
  const flags = leadingFlags(body);
  return `${flags}(?:${body.slice(flags.length)})(?![A-Za-z0-9_])`;
}

/** Warns for regexes that also match names continuing past the pattern's last word. */
export function prefixWithoutBoundary(ctx: LintContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const { pattern, role } of allPatterns(ctx)) {
    if (pattern.kind !== 'regex' || !pattern.test) continue;
    const bounded = withEndBoundary(pattern.body);
    if (bounded === undefined) continue;
    const strict = compilePattern({ text: `re:${bounded}`, origin: undefined }).value;
    if (!strict.test) continue;
    const all = patternHits(ctx.index, pattern).bits;
    const kept = patternHits(ctx.index, strict).bits;
    const extra: string[] = [];
    const exact: string[] = [];
    for (let i = 0; i < all.length; i++) {
      if (all[i] === 0) continue;
      if (kept[i] === 0) extra.push(ctx.tree.names[i]!);
      else exact.push(ctx.tree.names[i]!);
    }
    if (extra.length === 0) continue;
    const besides = exact.length > 0 ? `besides ${summarizeNames(exact, 2)}, ` : '';
    out.push(
      warning(
        'regex-prefix-without-boundary',
        `The ${role === 'target' ? 'target' : 'ignore entry'} "${pattern.text}" matches names that continue after it: ${besides}it also hits ${extra.length} module${extra.length === 1 ? '' : 's'} such as ${summarizeNames(extra, 2)} (re.match anchors only the start). Did you mean "re:${pattern.body}$"?`,
        pattern.origin,
      ),
    );
  }
  return out;
}
