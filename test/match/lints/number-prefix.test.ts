import { expect, it } from 'vitest';
import { literalDigitRuns, numberPrefix } from '../../../src/match/lints/number-prefix.js';
import { decoderTree } from '../tiny-tree.js';
import { runLint } from './harness.js';

const tree = decoderTree(21);

it('finds literal digits outside escapes, classes and counted repeats', () => {
  expect(literalDigitRuns('model.layers.12.*[0-9]{2}\\d\\1')).toEqual([[13, 15]]);
});

it('warns when a number also matches longer numbers', () => {
  expect(runLint(numberPrefix, tree, ['Linear'], ['re:model.layers.1.*', 're:model\\.layers\\.2'])).toMatchInlineSnapshot(`
    [
      "warning regex-number-prefix: The ignore entry "re:model.layers.1.*" matches numbers that merely start with "1": it also hits 100 modules such as model.layers.{10..19}, model.layers.{10..19}.{self_attn,mlp} … (70 more). Did you mean "re:model.layers.1\\..*"?",
      "warning regex-number-prefix: The ignore entry "re:model\\.layers\\.2" matches numbers that merely start with "2": it also hits 10 modules such as model.layers.20, model.layers.20.{self_attn,mlp} … (7 more). Did you mean "re:model\\.layers\\.2(?!\\d)"?",
    ]
  `);
});

it('is silent when a boundary follows the number', () => {
  expect(runLint(numberPrefix, tree, ['Linear'], ['re:model\\.layers\\.1\\..*', 're:.*layers\\.2$'])).toEqual([]);
});
