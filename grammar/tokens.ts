/**
 * Tokens of the quantc recipe language (`.qr`). Order in `allTokens` is the
 * lexer's priority order: longer or more specific patterns first, keywords
 * before `Identifier`.
 */
import type { TokenType } from 'chevrotain';
import { createToken, Lexer } from './chevrotain.js';

/** Any word usable as a name: identifiers and every keyword (so `group = 1` still parses). */
export const Name = createToken({ name: 'Name', pattern: Lexer.NA, label: 'a name' });

/** Category of all reserved words. */
export const Keyword = createToken({ name: 'Keyword', pattern: Lexer.NA });

/** A word: class names, argument names, bare string values, binding names. */
export const Identifier = createToken({
  name: 'Identifier',
  pattern: /[A-Za-z_][A-Za-z0-9_]*/,
  categories: [Name],
  label: 'a name',
});

/**
 * Makes a keyword token. `longer_alt` keeps an identifier that starts with a
 * keyword (`stages`, `importance`) one identifier, and the `Name` category
 * lets a keyword stand wherever a name may.
 */
function keyword(word: string, categories: readonly TokenType[] = [Name]): TokenType {
  return createToken({
    name: word[0]!.toUpperCase() + word.slice(1),
    pattern: new RegExp(word),
    longer_alt: Identifier,
    categories: [Keyword, ...categories],
    label: `"${word}"`,
  });
}

/** `recipe`: starts the header. */
export const Recipe = keyword('recipe');
/** `version`: the recipe's version in the header. */
export const Version = keyword('version');
/** `model`: the model a recipe was written for. */
export const Model = keyword('model');
/** `import`: reads bindings from another file. */
export const Import = keyword('import');
/** `let`: binds a name to a value. */
export const Let = keyword('let');
/** `moe`: MoE calibration settings. */
export const Moe = keyword('moe');
/** `rewrite`: a calibration rewrite inside `moe`. */
export const Rewrite = keyword('rewrite');
/** `stage`: a stage of modifiers. */
export const Stage = keyword('stage');
/** `group`: a named group of modifiers in a stage. */
export const Group = keyword('group');
/** `args`: llm-compressor's top-level `args`. */
export const Args = keyword('args');
/** `true`. Literal keywords are not names: `true` always means the boolean. */
export const True = keyword('true', []);
/** `false`. */
export const False = keyword('false', []);
/** `null`. */
export const Null = keyword('null', []);

/** `re"…"`: raw Python regex text, no escape processing; `\"` keeps both characters. */
export const RegexLiteral = createToken({ name: 'RegexLiteral', pattern: /re"(?:[^"\\\n\r]|\\[^\n\r])*"/, label: 'a regex literal' });

/** JSON-style double-quoted string. */
export const StringLiteral = createToken({
  name: 'StringLiteral',
  pattern: /"(?:[^"\\\n\r]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/,
  label: 'a string',
});

/** A number with a fraction or exponent; kept apart from integers. */
export const FloatLiteral = createToken({
  name: 'FloatLiteral',
  pattern: /-?(?:\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)/,
  label: 'a float',
});

/** An integer, without fraction or exponent. */
export const IntegerLiteral = createToken({
  name: 'IntegerLiteral',
  pattern: /-?\d+/,
  label: 'an integer',
});

/** Punctuation. */
export const LCurly = createToken({ name: 'LCurly', pattern: /\{/, label: '"{"' });
/** Punctuation. */
export const RCurly = createToken({ name: 'RCurly', pattern: /\}/, label: '"}"' });
/** Punctuation. */
export const LSquare = createToken({ name: 'LSquare', pattern: /\[/, label: '"["' });
/** Punctuation. */
export const RSquare = createToken({ name: 'RSquare', pattern: /\]/, label: '"]"' });
/** Punctuation. */
export const Equals = createToken({ name: 'Equals', pattern: /=/, label: '"="' });
/** Punctuation. */
export const Comma = createToken({ name: 'Comma', pattern: /,/, label: '","' });
/** Punctuation. */
export const Plus = createToken({ name: 'Plus', pattern: /\+/, label: '"+"' });

/** `# …` to end of line; kept in a group so the formatter can re-attach it. */
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n\r]*/, group: 'comments' });

/** Spaces and line breaks: never significant. */
export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\f\uFEFF]+/, group: Lexer.SKIPPED });

/** Every token, in lexer priority order. */
export const allTokens: readonly TokenType[] = [
  WhiteSpace,
  Comment,
  RegexLiteral,
  StringLiteral,
  FloatLiteral,
  IntegerLiteral,
  LCurly,
  RCurly,
  LSquare,
  RSquare,
  Equals,
  Comma,
  Plus,
  Recipe,
  Version,
  Model,
  Import,
  Let,
  Moe,
  Rewrite,
  Stage,
  Group,
  Args,
  True,
  False,
  Null,
  Identifier,
  Name,
  Keyword,
];
