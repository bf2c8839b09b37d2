/**
 * Python `re` pattern text → an equivalent JavaScript RegExp source.
 *
 * compressed-tensors matches `re:` patterns with Python's `re`, so quantc
 * accepts Python syntax and translates the constructs JavaScript spells
 * differently. Constructs JavaScript cannot express are rejected with
 * `kind: 'unsupported'`; text Python itself rejects gets `kind: 'invalid'`.
 * The result is compiled without the `u` flag, whose character-class and
 * escape rules are closer to Python's than unicode mode's.
 *
 * | Python                 | JavaScript            |
 * |------------------------|-----------------------|
 * | `(?P<name>…)`          | `(?<name>…)`          |
 * | `(?P=name)`            | `\k<name>`            |
 * | `\A`                   | `^` (`(?<![\s\S])` under `m`) |
 * | `\Z`                   | `$(?![\s\S])`         |
 * | `\a`                   | `\x07`                |
 * | `\U0000XXXX`           | `\uXXXX` (or a surrogate pair) |
 * | `(?#comment)`          | removed               |
 * | `x{,n}`                | `x{0,n}`              |
 * | `[]…]` (leading `]`)   | `[\]…]`               |
 * | leading `(?imsx)`      | flags `i`, `m`, `s`; `x` strips whitespace and `#` comments; `a`, `u` accepted |
 *
 * Rejected as unsupported: scoped flags `(?i:…)`, atomic groups `(?>…)`,
 * possessive quantifiers `*+ ++ ?+ {m,n}+`, conditionals `(?(1)…|…)`,
 * `\N{…}` named characters, and the `L` flag.
 */

/** The outcome of translating one pattern. `offset` indexes the Python text. */
export type PythonRegexTranslation =
  | { readonly ok: true; readonly source: string; readonly flags: string }
  | { readonly ok: false; readonly kind: 'invalid' | 'unsupported'; readonly message: string; readonly offset?: number };

class Failure {
  constructor(
    readonly kind: 'invalid' | 'unsupported',
    readonly message: string,
    readonly offset: number,
  ) {}
}

const LETTER_ESCAPES_SAME = new Set(['b', 'B', 'd', 'D', 'f', 'n', 'r', 's', 'S', 't', 'v', 'w', 'W']);
const HEX = /^[0-9a-fA-F]+$/;

/** Translates a Python `re` pattern into JavaScript RegExp source and flags. */
export function translatePythonRegex(pattern: string): PythonRegexTranslation {
  try {
    const { flags, bodyOffset } = leadingFlags(pattern);
    const verbose = flags.includes('x');
    const jsFlags = [...flags].filter((f) => f === 'i' || f === 'm' || f === 's').join('');
    const source = translateBody(pattern, bodyOffset, verbose, jsFlags.includes('m'));
    try {
      new RegExp(source, jsFlags);
    } catch (e) {
      return { ok: false, kind: 'invalid', message: cleanJsMessage((e as Error).message) };
    }
    return { ok: true, source, flags: jsFlags };
  } catch (e) {
    if (e instanceof Failure) return { ok: false, kind: e.kind, message: e.message, offset: e.offset };
    throw e;
  }
}

function cleanJsMessage(message: string): string {
  const m = /: (.*)$/.exec(message);
  return m ? m[1]! : message;
}

/** Reads global flag groups `(?aimsux)` at the very start (Python ≥ 3.11 requires them there). */
function leadingFlags(pattern: string): { flags: string; bodyOffset: number } {
  let flags = '';
  let i = 0;
  for (;;) {
    const m = /^\(\?([a-zA-Z]+)\)/.exec(pattern.slice(i));
    if (!m) break;
    for (const f of m[1]!) {
      if (f === 'L') throw new Failure('invalid', 'The "L" (locale) flag cannot be used with a str pattern.', i + 2);
      if (!'aimsux'.includes(f)) throw new Failure('invalid', `Unknown flag "${f}".`, i + 2);
      if (!flags.includes(f)) flags += f;
    }
    i += m[0].length;
  }
  if (flags.includes('a') && flags.includes('u')) throw new Failure('invalid', 'The "a" and "u" flags are incompatible.', 0);
  return { flags, bodyOffset: i };
}

function translateBody(p: string, start: number, verbose: boolean, multiline: boolean): string {
  let out = '';
  let i = start;
  let inClass = false;
  let classStart = -1;
  /** Offsets of open lookbehind groups, to check for variable width. */
  const groups: { lookbehind: boolean; start: number }[] = [];
  while (i < p.length) {
    const c = p[i]!;
    if (c === '\\') {
      const [text, next] = translateEscape(p, i, inClass, multiline);
      out += text;
      i = next;
      continue;
    }
    if (inClass) {
      if (c === ']') {
        inClass = false;
        out += ']';
      } else if (c === '[') {
        out += '\\[';
      } else {
        out += c;
      }
      i++;
      continue;
    }
    if (verbose && /\s/.test(c)) {
      i++;
      continue;
    }
    if (verbose && c === '#') {
      while (i < p.length && p[i] !== '\n') i++;
      continue;
    }
    switch (c) {
      case '[': {
        inClass = true;
        classStart = i;
        out += '[';
        i++;
        if (p[i] === '^') {
          out += '^';
          i++;
        }
        if (p[i] === ']') {
          out += '\\]';
          i++;
        }
        continue;
      }
      case '(': {
        const [text, next, lookbehind] = translateGroupOpen(p, i);
        out += text;
        // Comments and back-references consume their own ')'.
        if (text.startsWith('(')) groups.push({ lookbehind, start: next });
        i = next;
        continue;
      }
      case ')': {
        const g = groups.pop();
        if (g?.lookbehind) checkFixedWidth(p, g.start, i);
        out += ')';
        i++;
        break;
      }
      case '{': {
        const m = /^\{(\d*)(,?)(\d*)\}/.exec(p.slice(i));
        if (m && (m[1] !== '' || m[3] !== '')) {
          out += `{${m[1] === '' ? '0' : m[1]}${m[2]}${m[3]}}`;
          i += m[0].length;
          rejectPossessive(p, i);
        } else {
          out += '\\{';
          i++;
        }
        continue;
      }
      case '*':
      case '+':
      case '?': {
        out += c;
        i++;
        if (p[i] === '?') {
          out += '?';
          i++;
        } else {
          rejectPossessive(p, i);
        }
        continue;
      }
      case '}':
        out += '\\}';
        i++;
        continue;
      default:
        out += c;
        i++;
    }
  }
  if (inClass) throw new Failure('invalid', 'Unterminated character set.', classStart);
  return out;
}

function rejectPossessive(p: string, i: number): void {
  if (p[i] === '+') throw new Failure('unsupported', 'Possessive quantifiers are not supported.', i);
}

/** Translates the opening of a group at `p[i] === '('`; returns [text, next offset, isLookbehind]. */
function translateGroupOpen(p: string, i: number): [string, number, boolean] {
  if (p[i + 1] !== '?') return ['(', i + 1, false];
  const rest = p.slice(i + 2);
  if (rest.startsWith('P<')) {
    const m = /^P<([^>]*)>/.exec(rest);
    if (!m) throw new Failure('invalid', 'Missing ">" after a group name.', i);
    checkGroupName(m[1]!, i + 4);
    return [`(?<${m[1]}>`, i + 2 + m[0].length, false];
  }
  if (rest.startsWith('P=')) {
    const m = /^P=([^)]*)\)/.exec(rest);
    if (!m) throw new Failure('invalid', 'Missing ")" after a group reference.', i);
    checkGroupName(m[1]!, i + 4);
    return [`\\k<${m[1]}>`, i + 2 + m[0].length, false];
  }
  if (rest.startsWith('#')) {
    const close = p.indexOf(')', i);
    if (close < 0) throw new Failure('invalid', 'Missing ")", unterminated comment.', i);
    return ['', close + 1, false];
  }
  if (rest.startsWith(':') || rest.startsWith('=') || rest.startsWith('!')) return [`(?${rest[0]}`, i + 3, false];
  if (rest.startsWith('<=') || rest.startsWith('<!')) return [`(?${rest.slice(0, 2)}`, i + 4, true];
  if (rest.startsWith('<')) {
    throw new Failure('invalid', 'Python spells a named group "(?P<name>…)", not "(?<name>…)".', i);
  }
  if (rest.startsWith('>')) throw new Failure('unsupported', 'Atomic groups "(?>…)" are not supported.', i);
  if (rest.startsWith('(')) throw new Failure('unsupported', 'Conditional groups "(?(…)…|…)" are not supported.', i);
  if (/^[-aimsuxL]+[:)]/.test(rest)) {
    const m = /^[-aimsuxL]+([:)])/.exec(rest)!;
    if (m[1] === ')') {
      throw new Failure('invalid', 'Global flags must be at the start of the expression.', i);
    }
    throw new Failure('unsupported', 'Scoped inline flags "(?flags:…)" are not supported; put global flags like "(?i)" at the start.', i);
  }
  throw new Failure('invalid', `Unknown extension "(?${rest.slice(0, 1)}".`, i);
}

function checkGroupName(name: string, offset: number): void {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Failure('invalid', `Bad group name "${name}".`, offset);
}

/** Python requires look-behind to be fixed width; JavaScript does not, so check it here. */
function checkFixedWidth(p: string, from: number, to: number): void {
  const body = p.slice(from, to).replace(/\\./g, 'x').replace(/\[(?:\\.|[^\]])*\]/g, 'x');
  if (/[*+?]|\{\d*,\d*\}/.test(body.replace(/\(\?[:=!<]/g, '('))) {
    throw new Failure('invalid', 'Look-behind requires a fixed-width pattern.', from);
  }
}

/** Translates the escape at `p[i] === '\\'`; returns [text, next offset]. */
function translateEscape(p: string, i: number, inClass: boolean, multiline: boolean): [string, number] {
  const c = p[i + 1];
  if (c === undefined) throw new Failure('invalid', 'Bad escape (end of pattern).', i);
  if (!/[A-Za-z0-9]/.test(c)) return ['\\' + c, i + 2];
  if (LETTER_ESCAPES_SAME.has(c)) return ['\\' + c, i + 2];
  if (/[0-9]/.test(c)) {
    const m = /^[0-9]+/.exec(p.slice(i + 1))!;
    return ['\\' + m[0], i + 1 + m[0].length];
  }
  if (!inClass) {
    if (c === 'A') return [multiline ? '(?<![\\s\\S])' : '^', i + 2];
    if (c === 'Z') return ['$(?![\\s\\S])', i + 2];
  }
  switch (c) {
    case 'a':
      return ['\\x07', i + 2];
    case 'x': {
      const hex = p.slice(i + 2, i + 4);
      if (hex.length !== 2 || !HEX.test(hex)) throw new Failure('invalid', `Incomplete escape "\\x${hex}".`, i);
      return ['\\x' + hex, i + 4];
    }
    case 'u': {
      const hex = p.slice(i + 2, i + 6);
      if (hex.length !== 4 || !HEX.test(hex)) throw new Failure('invalid', `Incomplete escape "\\u${hex}".`, i);
      return ['\\u' + hex, i + 6];
    }
    case 'U': {
      const hex = p.slice(i + 2, i + 10);
      if (hex.length !== 8 || !HEX.test(hex)) throw new Failure('invalid', `Incomplete escape "\\U${hex}".`, i);
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff) throw new Failure('invalid', `Bad escape "\\U${hex}".`, i);
      return [codePointEscape(cp, inClass, i), i + 10];
    }
    case 'N':
      throw new Failure('unsupported', 'Named characters "\\N{…}" are not supported.', i);
    default:
      throw new Failure('invalid', `Bad escape "\\${c}".`, i);
  }
}

function codePointEscape(cp: number, inClass: boolean, offset: number): string {
  if (cp <= 0xffff) return '\\u' + cp.toString(16).padStart(4, '0');
  if (inClass) throw new Failure('unsupported', 'Characters outside the Basic Multilingual Plane are not supported in a character set.', offset);
  const s = String.fromCodePoint(cp);
  const hi = s.charCodeAt(0).toString(16);
  const lo = s.charCodeAt(1).toString(16);
  return `(?:\\u${hi}\\u${lo})`;
}
