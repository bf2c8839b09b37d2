import { expect, it } from 'vitest';
import { plainLooksLikeRegex } from '../../../src/match/lints/plain-looks-like-regex.js';
import { decoderTree } from '../tiny-tree.js';
import { runLint } from './harness.js';

const tree = decoderTree(2, 1);

it('warns for plain strings that look like regexes and match nothing', () => {
  expect(runLint(plainLooksLikeRegex, tree, ['Linear'], ['.*lm_head', 'model\\.layers\\.0\\..*', '^vision'])).toMatchInlineSnapshot(`
    [
      "warning plain-pattern-looks-like-regex: The ignore entry ".*lm_head" looks like a regular expression but has no "re:" prefix, so it is compared as an exact module or class name and matches nothing. With the prefix it would match 1 module. Did you mean "re:.*lm_head"?",
      "warning plain-pattern-looks-like-regex: The ignore entry "model\\.layers\\.0\\..*" looks like a regular expression but has no "re:" prefix, so it is compared as an exact module or class name and matches nothing. With the prefix it would match 9 modules. Did you mean "re:model\\.layers\\.0\\..*"?",
      "warning plain-pattern-looks-like-regex: The ignore entry "^vision" looks like a regular expression but has no "re:" prefix, so it is compared as an exact module or class name and matches nothing. Did you mean "re:^vision"?",
    ]
  `);
});

it('ignores plain names and real regexes', () => {
  expect(runLint(plainLooksLikeRegex, tree, ['Linear', 're:.*lm_head'], ['lm_head'])).toEqual([]);
});
