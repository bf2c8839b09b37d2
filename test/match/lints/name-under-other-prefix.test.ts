import { expect, it } from 'vitest';
import { nameUnderOtherPrefixLint } from '../../../src/match/lints/name-under-other-prefix.js';
import { tinyTree } from '../tiny-tree.js';
import { runLint } from './harness.js';

const tree = tinyTree([
  ['', 'Llama4ForConditionalGeneration'],
  ['language_model', 'Llama4ForCausalLM'],
  ['language_model.model', 'Llama4TextModel'],
  ['language_model.model.embed_tokens', 'Embedding'],
  ['language_model.lm_head', 'Linear'],
]);

it('warns for an exact name that exists only under another prefix', () => {
  expect(runLint(nameUnderOtherPrefixLint, tree, ['Linear'], ['lm_head', 'model.embed_tokens'])).toMatchInlineSnapshot(`
    [
      "warning name-under-other-prefix: The ignore entry "lm_head" matches nothing: plain names must be full module names, and this model has "language_model.lm_head". Did you mean "language_model.lm_head" or "re:.*\\.lm_head$"?",
      "warning name-under-other-prefix: The ignore entry "model.embed_tokens" matches nothing: plain names must be full module names, and this model has "language_model.model.embed_tokens". Did you mean "language_model.model.embed_tokens" or "re:.*\\.model\\.embed_tokens$"?",
    ]
  `);
});

it('is silent for full names', () => {
  expect(runLint(nameUnderOtherPrefixLint, tree, ['Linear'], ['language_model.lm_head'])).toEqual([]);
});
