/**
 * Target and ignore patterns compiled once. compressed-tensors reads a
 * pattern string two ways: `re:<python regex>` is `re.match` against the
 * module's qualified name (anchored at the start only, no implicit `$`);
 * anything else is an exact full name or a class name anywhere in the MRO.
 */
import { error, type Diagnostic, type Result } from '../diagnostics.js';
import type { PatternRef } from '../ir/types.js';
import type { Span } from '../source.js';
import { scanPythonRegex } from './lints/regex-scan.js';
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
  /**
   * An equivalent, faster test for names without line breaks: for
   * `.*REST` an unanchored search for REST, and a redundant trailing `.*`
   * dropped.
   */
  readonly testPlain?: (name: string) => boolean;
  /**
   * True when the verdict cannot change if every run of ASCII digits in a
   * name is replaced by a single `0` (see `isDigitInsensitive`), so one
   * test per distinct digit-free name shape decides for all of them.
   */
  readonly digitInsensitive: boolean;
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
    return { value: { text: ref.text, origin: ref.origin, kind: 'plain', body: ref.text, digitInsensitive: false }, diagnostics: [] };
  }
  const body = ref.text.slice(3);
  const base = { text: ref.text, origin: ref.origin, kind: 'regex' as const, body, digitInsensitive: false };
  const compiled = compileMatcher(body);
  if ('code' in compiled) return { value: base, diagnostics: [compiled] };
  return { value: { ...base, ...compiled, digitInsensitive: isDigitInsensitive(body) }, diagnostics: [] };
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
 * The `re.match` tests for a Python pattern body, or the diagnostic that
 * says why there are none.
 */
function compileMatcher(body: string): { test: (name: string) => boolean; testPlain: (name: string) => boolean } | Diagnostic {
  const t = translatePythonRegex(body);
  if (!t.ok) {
    const where = t.offset === undefined ? '' : ` at position ${t.offset + 3}`;
    const why = t.message.replace(/^\/.*\/[a-z]*: /s, '').replace(/\.$/, '');
    return t.kind === 'unsupported'
      ? error('regex-unsupported', `The regex in "re:${body}" uses a construct quantc cannot translate${where}: ${why}.`)
      : error('regex-invalid', `The regex in "re:${body}" is not a valid Python regular expression${where}: ${why}.`);
  }
  const anchored = new RegExp(`^(?:${t.source})`, t.flags);
  const test = (name: string) => anchored.test(name);
  return { test, testPlain: plainNameTest(body, t.flags) ?? test };
}

/**
 * For names without line breaks (where `.` matches every character):
 * `re.match(".*REST", name)` is a search for REST anywhere, and a trailing
 * `.*` can always match the empty string. Only applied when the body has
 * no top-level `|`, no backreference and no inline flags.
 */
function plainNameTest(body: string, flags: string): ((name: string) => boolean) | undefined {
  const tokens = scanPythonRegex(body);
  const text = (k: number) => (tokens[k] ? body.slice(tokens[k]!.start, tokens[k]!.end) : '');
  const isChar = (k: number, c: string) => tokens[k]?.kind === 'char' && text(k) === c;
  let depth = 0;
  for (let k = 0; k < tokens.length; k++) {
    const x = text(k);
    if (tokens[k]!.kind === 'atom' && (/^\\[1-9]/.test(x) || x.startsWith('(?P=') || /^\(\?[aimsuxL-]+[:)]$/.test(x))) return undefined;
    if (tokens[k]!.kind === 'atom' && x.startsWith('(') && !x.startsWith('(?#')) depth++;
    else if (isChar(k, '(')) depth++;
    else if (isChar(k, ')')) depth--;
    else if (isChar(k, '|') && depth === 0) return undefined;
  }
  let start = 0;
  let end = tokens.length;
  const leading = isChar(0, '.') && isChar(1, '*');
  if (leading) start = isChar(2, '?') ? 3 : 2;
  if (end - start >= 2 && isChar(end - 2, '.') && isChar(end - 1, '*')) end -= 2;
  else if (end - start >= 3 && isChar(end - 3, '.') && isChar(end - 2, '*') && isChar(end - 1, '?')) end -= 3;
  if (start === 0 && end === tokens.length) return undefined;
  if (start >= end) return () => true;
  const rest = body.slice(tokens[start]!.start, tokens[end - 1]!.end);
  if (/^[*+?{]/.test(rest)) return undefined;
  const t = translatePythonRegex(rest);
  if (!t.ok || t.flags !== flags) return undefined;
  const re = new RegExp(leading ? t.source : `^(?:${t.source})`, t.flags);
  return (name) => re.test(name);
}

/**
 * True when a pattern's verdict on a name is unchanged by replacing each
 * run of ASCII digits with one `0`: digits can only be consumed by `.*`
 * (which can take any part of a run, or none of it) or by `\d+` between
 * two non-digit literals (which must take a whole run). So no literal
 * digits, no `\d` otherwise, no classes, counted repeats, `.` on its own,
 * `.+`, `.?`, lookarounds, backreferences, other class escapes or verbose
 * mode.
 */
export function isDigitInsensitive(body: string): boolean {
  const tokens = scanPythonRegex(body);
  const text = (k: number) => (tokens[k] ? body.slice(tokens[k]!.start, tokens[k]!.end) : '');
  const literal = (k: number) => {
    const x = text(k);
    if (tokens[k]?.kind === 'char') return !/[0-9.*+?|()^$]/.test(x);
    return /^\\[^A-Za-z0-9]$/.test(x);
  };
  for (let k = 0; k < tokens.length; k++) {
    const x = text(k);
    if (tokens[k]!.kind === 'char') {
      if (/[0-9]/.test(x)) return false;
      if (x === '.' && text(k + 1) !== '*') return false;
      continue;
    }
    if (x === '\\d') {
      if (text(k + 1) !== '+' || !literal(k - 1) || !literal(k + 2) || /^[*+?{]/.test(text(k + 3))) return false;
      k++;
      continue;
    }
    if (/^\\[^A-Za-z0-9]$/.test(x) || x === '\\A' || x === '\\Z') continue;
    if (x === '(?:' || /^\(\?P<[^>]*>$/.test(x) || x.startsWith('(?#')) continue;
    if (/^\(\?[aimsuL]+\)$/.test(x)) continue;
    return false;
  }
  return true;
}
