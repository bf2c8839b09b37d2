/**
 * A lexical scan of a Python regex, just enough for lints that rewrite a
 * pattern (escape a dot, add a boundary after a number): which characters
 * are plain literals or metacharacters outside classes, escapes and braces.
 */

/** One token of a Python pattern. */
export interface RegexToken {
  /** `char`: one literal or metacharacter; `atom`: an escape, class, brace quantifier or group prefix. */
  readonly kind: 'char' | 'atom';
  readonly start: number;
  readonly end: number;
}

const ATOM_PREFIXES = [/^\(\?P<[^>]*>/, /^\(\?P=[^)]*\)/, /^\(\?#[^)]*\)/, /^\(\?[a-zA-Z-]*[:)]/, /^\(\?<?[=!]/, /^\{\d*(,\d*)?\}/];

/** Splits a Python pattern into tokens. */
export function scanPythonRegex(body: string): RegexToken[] {
  const tokens: RegexToken[] = [];
  let i = 0;
  while (i < body.length) {
    const start = i;
    const c = body[i]!;
    if (c === '\\') i = escapeEnd(body, i);
    else if (c === '[') i = classEnd(body, i);
    else {
      const m = ATOM_PREFIXES.map((re) => re.exec(body.slice(i))).find((x) => x !== null);
      if (m) i += m[0].length;
      else {
        tokens.push({ kind: 'char', start, end: i + 1 });
        i++;
        continue;
      }
    }
    tokens.push({ kind: 'atom', start, end: i });
  }
  return tokens;
}

function escapeEnd(body: string, i: number): number {
  const c = body[i + 1];
  if (c === undefined) return i + 1;
  const hex = c === 'x' ? 2 : c === 'u' ? 4 : c === 'U' ? 8 : 0;
  if (hex > 0) return Math.min(body.length, i + 2 + hex);
  if (c === 'N' && body[i + 2] === '{') return body.indexOf('}', i) + 1 || body.length;
  if (/[0-9]/.test(c)) return i + 1 + /^[0-9]{1,3}/.exec(body.slice(i + 1))![0].length;
  return i + 2;
}

function classEnd(body: string, i: number): number {
  let j = i + 1;
  if (body[j] === '^') j++;
  if (body[j] === ']') j++;
  while (j < body.length && body[j] !== ']') j += body[j] === '\\' ? 2 : 1;
  return Math.min(body.length, j + 1);
}

/** True when the token at `k` is followed by a quantifier (`*`, `+`, `?` or `{m,n}`). */
export function quantifiedAt(body: string, tokens: readonly RegexToken[], k: number): boolean {
  const next = tokens[k + 1];
  if (!next) return false;
  const c = body[next.start];
  return (next.kind === 'char' && (c === '*' || c === '+' || c === '?')) || (next.kind === 'atom' && c === '{');
}

/** Leading global flag groups such as `(?i)`, which must stay at the start of a rewritten pattern. */
export function leadingFlags(body: string): string {
  return /^(\(\?[a-zA-Z]+\))*/.exec(body)![0];
}
