/**
 * Syntax error messages: one sentence each, naming what was expected in the
 * words of the language ("a value", "\"}\"") rather than token type names.
 */
import type { IParserErrorMessageProvider, IToken, TokenType } from 'chevrotain';
import { EOF, tokenLabel } from './chevrotain.js';

/** What a rule expects, for "no viable alternative" messages. */
const RULE_EXPECTS: Readonly<Record<string, string>> = {
  recipeFile: 'a top-level item (recipe, model, import, let, moe, args or stage)',
  topItem: 'a top-level item (recipe, model, import, let, moe, args or stage)',
  term: 'a value',
  value: 'a value',
  blockName: 'a name',
  entry: 'an entry such as `name = value`',
  moeBlock: 'an entry or a rewrite',
  stageBlock: 'a modifier or a group',
};

function describe(token: IToken | undefined): string {
  if (!token || token.tokenType === EOF) return 'the end of the file';
  return `"${token.image}"`;
}

function labels(paths: readonly (readonly TokenType[])[]): string {
  const firsts = [...new Set(paths.map((p) => (p[0] ? tokenLabel(p[0]) : 'the end')))];
  return firsts.length === 1 ? firsts[0]! : `one of ${firsts.join(', ')}`;
}

/** The parser's error message provider. */
export const recipeErrorMessages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual }) {
    const what = expected === EOF ? RULE_EXPECTS.recipeFile! : tokenLabel(expected);
    return `Expected ${what} but found ${describe(actual)}.`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `Expected ${RULE_EXPECTS.recipeFile} but found ${describe(firstRedundant)}.`;
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, actual, ruleName }) {
    const expected = RULE_EXPECTS[ruleName] ?? labels(expectedPathsPerAlt.flat());
    return `Expected ${expected} but found ${describe(actual[0])}.`;
  },
  buildEarlyExitMessage({ expectedIterationPaths, actual, ruleName }) {
    const expected = RULE_EXPECTS[ruleName] ?? labels(expectedIterationPaths);
    return `Expected ${expected} but found ${describe(actual[0])}.`;
  },
};
