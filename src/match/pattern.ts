/**
 * Target and ignore patterns compiled once. compressed-tensors reads a
 * pattern string two ways: `re:<python regex>` is `re.match` against the
 * module's qualified name (anchored at the start only, no implicit `$`);
 * anything else is an exact full name or a class name anywhere in the MRO.
 */
import { error, type Diagnostic, type Result } from '../diagnostics.js';
import type { PatternRef } from '../ir/types.js';
import type { Span } from '../source.js';
import { translatePythonRegex } from './python-regex.js';

/** One compiled target or ignore entry. */
export interface CompiledPattern {
  /** The compressed-tensors string exactly as written, `re:` included. */
  readonly text: string;
  readonly origin: Span | undefined;
  /** `regex` for `re:` patterns; `plain` for exact names and class names. */
  readonly kind: 'regex' | 'plain';
  /** For `regex`: the Python pattern after `re:`. For `plain`: the text. */
  readonly body: string;
  /**
   * Tests a qualified module name with `re.match` semantics. Absent for
   * plain patterns and for regexes that could not be translated (those
   * match nothing and carry an error diagnostic).
   */
  readonly test?: (name: string) => boolean;
}

/** Builds a PatternRef for patterns that come from the command line or tests. */
export function patternRef(text: string, origin?: Span): PatternRef {
  return { text, origin };
}

/**
 * Compiles one pattern. A regex Python would reject, or one JavaScript
 * cannot express, yields an error and a pattern that matches nothing.
 */
export function compilePattern(ref: PatternRef): Result<CompiledPattern> {
  if (!ref.text.startsWith('re:')) {
    return { value: { text: ref.text, origin: ref.origin, kind: 'plain', body: ref.text }, diagnostics: [] };
  }
  const body = ref.text.slice(3);
  const base = { text: ref.text, origin: ref.origin, kind: 'regex' as const, body };
  const compiled = compileMatcher(body);
  if (typeof compiled !== 'function') return { value: base, diagnostics: [compiled] };
  return { value: { ...base, test: compiled }, diagnostics: [] };
}

/** Compiles a list of patterns, keeping their order. */
export function compilePatterns(refs: readonly PatternRef[]): Result<CompiledPattern[]> {
  const diagnostics: Diagnostic[] = [];
  const value = refs.map((ref) => {
    const r = compilePattern(ref);
    diagnostics.push(...r.diagnostics.map((d) => (ref.origin && !d.span ? { ...d, span: ref.origin } : d)));
    return r.value;
  });
  return { value, diagnostics };
}

/**
 * The `re.match` test for a Python pattern body, or the diagnostic that
 * says why there is none. A body of the form `.*REST` (the most common
 * shape: `re:.*mlp.gate$`) is tested as an unanchored search for REST,
 * which is equivalent for names without line breaks and much faster.
 */
function compileMatcher(body: string): ((name: string) => boolean) | Diagnostic {
  const t = translatePythonRegex(body);
  if (!t.ok) {
    const where = t.offset === undefined ? '' : ` at position ${t.offset + 3}`;
    const unsupported = 'kind' in t && t.kind === 'unsupported';
    return unsupported
      ? error('pattern-regex-unsupported', `The regex in "re:${body}" uses a construct quantc cannot translate${where}: ${t.message}.`)
      : error('pattern-regex-invalid', `The regex in "re:${body}" is not a valid Python regular expression${where}: ${t.message}.`);
  }
  const anchored = new RegExp(`^(?:${t.source})`, t.flags);
  const rest = leadingDotStarRest(body);
  if (rest !== undefined) {
    const r = translatePythonRegex(rest);
    if (r.ok && r.flags === t.flags) {
      const search = new RegExp(r.source, r.flags);
      return (name) => (/[\n\r\u2028\u2029]/.test(name) ? anchored.test(name) : search.test(name));
    }
  }
  return (name) => anchored.test(name);
}

/**
 * For `.*REST` or `.*?REST` where REST has no top-level `|`, no leading
 * quantifier, no backreference and no inline flags, returns REST.
 */
function leadingDotStarRest(body: string): string | undefined {
  const m = /^\.\*\??/.exec(body);
  if (!m) return undefined;
  const rest = body.slice(m[0].length);
  if (rest === '' || /^[*+?{]/.test(rest) || /\\[1-9]|\(\?P=|\(\?[a-zA-Z-]/.test(rest)) return undefined;
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']' || rest[i - 1] === '[' || rest.slice(i - 2, i) === '[^';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return undefined;
  }
  return rest;
}
