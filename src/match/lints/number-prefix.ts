/**
 * A number in a regex that also matches longer numbers: `re:model.layers.1.*`
 * hits layers 1, 10–19 and 100–199, because `re.match` needs no boundary
 * after the `1`.
 */
import { warning, type Diagnostic } from '../../diagnostics.js';
import { summarizeNames } from '../compress-names.js';
import { compilePattern } from '../pattern.js';
import { patternHits } from '../match-index.js';
import { allPatterns, type LintContext } from './context.js';
import { scanPythonRegex } from './regex-scan.js';

/** `[start, end)` of each run of literal digits outside escapes, classes and braces. */
export function literalDigitRuns(body: string): [number, number][] {
  const runs: [number, number][] = [];
  for (const t of scanPythonRegex(body)) {
    if (t.kind !== 'char' || !/[0-9]/.test(body[t.start]!)) continue;
    const last = runs[runs.length - 1];
    if (last && last[1] === t.start) last[1] = t.end;
    else runs.push([t.start, t.end]);
  }
  return runs;
}

/** The fix to suggest: `\.` before a following `.*`/`.+`, else a `(?!\d)` guard. */
function suggestion(body: string, end: number): string {
  if (/^\.[*+]/.test(body.slice(end))) return `${body.slice(0, end)}\\.${body.slice(end)}`;
  return `${body.slice(0, end)}(?!\\d)${body.slice(end)}`;
}

/** Warns for regexes whose literal numbers also match longer numbers in this model. */
export function numberPrefix(ctx: LintContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const { pattern, role } of allPatterns(ctx)) {
    if (pattern.kind !== 'regex' || !pattern.test) continue;
    const body = pattern.body;
    for (const [start, end] of literalDigitRuns(body)) {
      if (start > 0 && /[0-9]/.test(body[start - 1]!)) continue;
      const guarded = compilePattern({ text: `re:${body.slice(0, end)}(?![0-9])${body.slice(end)}`, origin: undefined }).value;
      if (!guarded.test) continue;
      const all = patternHits(ctx.index, pattern).bits;
      const kept = patternHits(ctx.index, guarded).bits;
      const extra: string[] = [];
      for (let i = 0; i < all.length; i++) if (all[i] !== 0 && kept[i] === 0) extra.push(ctx.tree.names[i]!);
      if (extra.length === 0) continue;
      const digits = body.slice(start, end);
      out.push(
        warning(
          'regex-number-prefix',
          `The ${role === 'target' ? 'target' : 'ignore entry'} "${pattern.text}" matches numbers that merely start with "${digits}": it also hits ${extra.length} module${extra.length === 1 ? '' : 's'} such as ${summarizeNames(extra, 2)}. Did you mean "re:${suggestion(body, end)}"?`,
          pattern.origin,
        ),
      );
    }
  }
  return out;
}
