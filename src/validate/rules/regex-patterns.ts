/**
 * Asserts every `re:` pattern a modifier names (targets, ignore, config
 * group targets, mappings) compiles as a Python regular expression, as the
 * DSL checks its regex literals at parse time: one code, whatever the
 * recipe's form. A pattern spelled as a DSL literal (`re"…"`) was already
 * checked by the parser and is not reported twice.
 */
import { error, type Diagnostic } from '../../diagnostics.js';
import { translatePythonRegex } from '../../match/python-regex.js';
import { argSpan, type ModifierRef, type RuleContext } from '../context.js';

function* patterns(value: unknown, path: string): Generator<{ text: string; path: string }> {
  if (typeof value === 'string') {
    if (value.startsWith('re:')) yield { text: value, path };
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* patterns(value[i], `${path}/${i}`);
  } else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) yield* patterns(v, `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`);
}

/** c-t / llm-compressor compile `re:` patterns with Python's `re`; an invalid one raises deep inside a run. */
export function regexPatterns(ctx: RuleContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  const visit = (m: ModifierRef): void => {
    for (const p of patterns(m.args, '')) {
      const body = p.text.slice(3);
      const r = translatePythonRegex(body);
      if (r.ok) continue;
      const span = argSpan(ctx, m, p.path);
      // A DSL regex literal re"…" spans the body plus four characters; the parser reported it.
      if (span && span.end - span.start === body.length + 4) continue;
      const message = `Invalid regular expression "${p.text}": ${r.message}`;
      out.push(error(r.kind === 'unsupported' ? 'regex-unsupported' : 'regex-invalid', message, span));
    }
  };
  ctx.modifiers.forEach(visit);
  return out;
}
