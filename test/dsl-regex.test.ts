import { describe, expect, it } from 'vitest';
import { translatePythonRegex } from '../src/match/python-regex.js';

/** Python pattern → expected JS source and flags. */
const translated: readonly [string, string, string][] = [
  ['.*mlp\\.gate$', '.*mlp\\.gate$', ''],
  ['(?P<layer>\\d+)\\.mlp', '(?<layer>\\d+)\\.mlp', ''],
  ['(?P<x>a)(?P=x)', '(?<x>a)\\k<x>', ''],
  ['\\Aabc\\Z', '^abc$(?![\\s\\S])', ''],
  ['(?m)\\Aabc', '(?<![\\s\\S])abc', 'm'],
  ['(?i)lm_head', 'lm_head', 'i'],
  ['(?is)a.b', 'a.b', 'is'],
  ['(?a)\\w+', '\\w+', ''],
  ['(?u)\\w+', '\\w+', ''],
  ['(?x) a \\ b  # comment\n c', 'a\\ bc', ''],
  ['(?x)[ a]', '[ a]', ''],
  ['a(?#note)b', 'ab', ''],
  ['a{,3}', 'a{0,3}', ''],
  ['a{2,}', 'a{2,}', ''],
  ['a{x}', 'a\\{x\\}', ''],
  ['[]a]', '[\\]a]', ''],
  ['[^]a]', '[^\\]a]', ''],
  ['\\a', '\\x07', ''],
  ['\\U0001F600', '(?:\\ud83d\\ude00)', ''],
  ['\\U00000041', '\\u0041', ''],
  ['(?<=mlp\\.)gate', '(?<=mlp\\.)gate', ''],
  ['a*?b+?c??', 'a*?b+?c??', ''],
  ['\\x41\\u0042', '\\x41\\u0042', ''],
];

/** Python pattern → expected failure kind and a fragment of the message. */
const rejected: readonly [string, 'invalid' | 'unsupported', string][] = [
  ['(?i:a)b', 'unsupported', 'Scoped inline flags'],
  ['(?>a)', 'unsupported', 'Atomic groups'],
  ['a*+', 'unsupported', 'Possessive'],
  ['a{1,2}+', 'unsupported', 'Possessive'],
  ['(a)?(?(1)b|c)', 'unsupported', 'Conditional'],
  ['\\N{DIGIT ONE}', 'unsupported', 'Named characters'],
  ['(?L)a', 'invalid', 'locale'],
  ['(?au)a', 'invalid', 'incompatible'],
  ['a(?i)', 'invalid', 'Global flags must be at the start'],
  ['(?<name>a)', 'invalid', '(?P<name>'],
  ['\\q', 'invalid', 'Bad escape "\\q"'],
  ['\\x4', 'invalid', 'Incomplete escape'],
  ['(?P<1a>x)', 'invalid', 'Bad group name'],
  ['(?<=a+)b', 'invalid', 'fixed-width'],
  ['[abc', 'invalid', 'Unterminated character set'],
  ['(abc', 'invalid', ''],
  ['*a', 'invalid', ''],
];

describe('translatePythonRegex', () => {
  it.each(translated)('translates %j', (python, source, flags) => {
    expect(translatePythonRegex(python)).toEqual({ ok: true, source, flags });
  });

  it.each(rejected)('rejects %j', (python, kind, fragment) => {
    const r = translatePythonRegex(python);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.kind).toBe(kind);
      expect(r.message).toContain(fragment);
    }
  });

  it('matches like Python re.match on module names', () => {
    const r = translatePythonRegex('(?P<p>.*)\\.mlp\\.gate\\Z');
    if (!r.ok) throw new Error(r.message);
    const re = new RegExp(r.source, r.flags);
    expect(re.test('model.layers.1.mlp.gate')).toBe(true);
    expect(re.test('model.layers.1.mlp.gate_proj')).toBe(false);
  });

  it('reports the offset of the offending construct', () => {
    const r = translatePythonRegex('abc\\q');
    expect(r).toMatchObject({ ok: false, offset: 3 });
  });
});
