import { expect, it } from 'vitest';
import { prefixWithoutBoundary, withEndBoundary } from '../../../src/match/lints/prefix-without-boundary.js';
import { decoderTree } from '../tiny-tree.js';
import { runLint } from './harness.js';

const tree = decoderTree(3, 1);

it('adds a boundary unless the pattern already ends open or anchored', () => {
  expect(withEndBoundary('.*mlp.gate')).toBe('(?:.*mlp.gate)(?![A-Za-z0-9_])');
  expect(withEndBoundary('(?i).*a|b')).toBe('(?i)(?:.*a|b)(?![A-Za-z0-9_])');
  expect(withEndBoundary('.*mlp.gate$')).toBeUndefined();
  expect(withEndBoundary('.*experts.*')).toBeUndefined();
});

it('warns when a regex also hits names that continue past it', () => {
  expect(runLint(prefixWithoutBoundary, tree, ['Linear'], ['re:.*mlp.gate'])).toMatchInlineSnapshot(`
    [
      "warning regex-prefix-without-boundary: The ignore entry "re:.*mlp.gate" matches names that continue after it: besides model.layers.{1,2}.mlp.gate, it also hits 1 module such as model.layers.0.mlp.gate_proj (re.match anchors only the start). Did you mean "re:.*mlp.gate$"?",
    ]
  `);
});

it('is silent when the match always ends at a component boundary', () => {
  expect(runLint(prefixWithoutBoundary, tree, ['re:.*self_attn'], ['re:.*mlp.experts'])).toEqual([]);
});
