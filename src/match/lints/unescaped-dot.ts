/**
 * An unescaped `.` in a regex that matches more than the escaped version
 * would: `re:.*mlp.gate` also matches `mlp_gate`, `mlpXgate`. Only reported
 * when this model actually has such a module, with an example.
 */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { summarizeNames } from '../compress-names.js';
import { compilePattern } from '../pattern.js';
import { patternHits } from '../match-index.js';
import { allPatterns, type LintContext } from './context.js';
import { quantifiedAt, scanPythonRegex } from './regex-scan.js';

/** The pattern body with every literal-looking `.` (unquantified, outside classes) escaped, or undefined if none. */
export function escapeLiteralDots(body: string): string | undefined {
  const tokens = scanPythonRegex(body);
  let out = '';
  let changed = false;
  tokens.forEach((t, k) => {
    const text = body.slice(t.start, t.end);
    if (t.kind === 'char' && text === '.' && !quantifiedAt(body, tokens, k)) {
      out += '\\.';
      changed = true;
    } else out += text;
  });
  return changed ? out : undefined;
}

/** Warns for regexes whose unescaped dots let them match modules the escaped pattern would not. */
export function unescapedDot(ctx: LintContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const { pattern, role } of allPatterns(ctx)) {
    if (pattern.kind !== 'regex' || !pattern.test) continue;
    const escaped = escapeLiteralDots(pattern.body);
    if (escaped === undefined) continue;
    const strict = compilePattern({ text: `re:${escaped}`, origin: undefined }).value;
    if (!strict.test) continue;
    const loose = patternHits(ctx.index, pattern).bits;
    const tight = patternHits(ctx.index, strict).bits;
    const extra: string[] = [];
    for (let i = 0; i < loose.length; i++) if (loose[i] !== 0 && tight[i] === 0) extra.push(ctx.tree.names[i]!);
    if (extra.length === 0) continue;
    out.push(
      warning(
        'regex-unescaped-dot',
        `The ${role === 'target' ? 'target' : 'ignore entry'} "${pattern.text}" has an unescaped "." (any character), so it also matches ${extra.length} module${extra.length === 1 ? '' : 's'} where no dot stands, e.g. "${extra[0]}"${extra.length > 1 ? ` (${summarizeNames(extra)})` : ''}. Did you mean "re:${escaped}"?`,
        pattern.origin,
      ),
    );
  }
  return out;
}
