/**
 * How names and strings are spelled in canonical DSL text.
 */
import { translatePythonRegex } from '../match/python-regex.js';
import type { ValueSyntax } from '../parse/dsl-syntax.js';

/** True when `s` can be written as a bare name (a keyword is fine except the literals). */
export function isBareName(s: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) && s !== 'true' && s !== 'false' && s !== 'null';
}

/** The characters a regex literal can hold, exactly as the lexer reads them. */
const REGEX_BODY = /^(?:[^"\\\n\r]|\\[^\n\r])*$/;

/** How `printDsl` writes a document string: class-like names bare, valid `re:` patterns as regex literals. */
export function stringSyntax(value: string): ValueSyntax {
  const span = { path: '', start: 0, end: 0 };
  if (/^[A-Z][A-Za-z0-9_]*$/.test(value)) return { kind: 'ident', name: value, span };
  if (value.startsWith('re:')) {
    const text = value.slice(3);
    if (REGEX_BODY.test(text) && translatePythonRegex(text).ok) return { kind: 'regex', text, span };
  }
  return { kind: 'string', value, span };
}

const KEYWORDS = new Set(['recipe', 'version', 'model', 'import', 'let', 'moe', 'rewrite', 'stage', 'group', 'args']);

/** Whether a name must be quoted: it is not word-shaped, or is a keyword (which cannot name a modifier). */
export function needsQuotes(text: string): boolean {
  return !isBareName(text) || KEYWORDS.has(text);
}

