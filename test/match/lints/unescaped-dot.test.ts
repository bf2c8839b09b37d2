import { expect, it } from 'vitest';
import { escapeLiteralDots, unescapedDot } from '../../../src/match/lints/unescaped-dot.js';
import { tinyTree } from '../tiny-tree.js';
import { runLint } from './harness.js';

const tree = tinyTree([['', 'M'], ['mlp', 'MLP'], ['mlp.gate', 'Linear'], ['mlp_gate', 'Linear'], ['mlp.up', 'Linear']]);

it('escapes only dots that stand for themselves', () => {
  expect(escapeLiteralDots('.*mlp.gate$')).toBe('.*mlp\\.gate$');
  expect(escapeLiteralDots('.*mlp\\.gate.*')).toBeUndefined();
  expect(escapeLiteralDots('[.]a.+')).toBeUndefined();
});

it('warns when the unescaped dot matches a module the escaped pattern would not', () => {
  expect(runLint(unescapedDot, tree, ['Linear'], ['re:.*mlp.gate$'])).toMatchInlineSnapshot(`
    [
      "warning regex-unescaped-dot: The ignore entry "re:.*mlp.gate$" has an unescaped "." (any character), so it also matches 1 module where no dot stands, e.g. "mlp_gate". Did you mean "re:.*mlp\\.gate$"?",
    ]
  `);
});

it('is silent when escaping would not change what matches', () => {
  expect(runLint(unescapedDot, tree, ['re:.*mlp.up$'], [])).toEqual([]);
});
