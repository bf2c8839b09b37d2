import { expect, it } from 'vitest';
import { ignoreWithoutEffect } from '../../../src/match/lints/ignore-without-effect.js';
import { decoderTree, tinyTree } from '../tiny-tree.js';
import { runLint } from './harness.js';

const tree = decoderTree(3, 1);

it('warns when an ignore entry only hits modules that would not be quantized', () => {
  expect(runLint(ignoreWithoutEffect, tree, ['Linear'], ['re:.*mlp.gate$', 'lm_head'])).toMatchInlineSnapshot(`
    [
      "warning ignore-without-effect: The ignore entry "re:.*mlp.gate$" changes nothing: it matches 2 modules (model.layers.{1,2}.mlp.gate), but no target matches them (they are "TopkRouter", not nn.Linear or nn.Embedding subclasses).",
    ]
  `);
  expect(runLint(ignoreWithoutEffect, tree, ['re:.*mlp.*'], ['re:.*mlp.gate$'])).toMatchInlineSnapshot(`
    [
      "warning ignore-without-effect: The ignore entry "re:.*mlp.gate$" changes nothing: it matches 2 modules (model.layers.{1,2}.mlp.gate), but none of them would receive a scheme: they are "TopkRouter", not nn.Linear or nn.Embedding subclasses, and only those (and attention modules) are quantized.",
    ]
  `);
  expect(runLint(ignoreWithoutEffect, tree, ['re:.*experts.*'], ['lm_head'])).toMatchInlineSnapshot(`
    [
      "warning ignore-without-effect: The ignore entry "lm_head" changes nothing: it matches 1 module (lm_head), but no target matches it.",
    ]
  `);
});

it('speaks of one module in the singular', () => {
  expect(runLint(ignoreWithoutEffect, tree, ['Linear'], ['model.layers.1.mlp.gate'])).toEqual([
    'warning ignore-without-effect: The ignore entry "model.layers.1.mlp.gate" changes nothing: it matches 1 module (model.layers.1.mlp.gate), but no target matches it (it is "TopkRouter", not an nn.Linear or nn.Embedding subclass).',
  ]);
  expect(runLint(ignoreWithoutEffect, tree, ['re:.*mlp.*'], ['model.layers.1.mlp.gate'])).toEqual([
    'warning ignore-without-effect: The ignore entry "model.layers.1.mlp.gate" changes nothing: it matches 1 module (model.layers.1.mlp.gate), but it would not receive a scheme: it is "TopkRouter", not an nn.Linear or nn.Embedding subclass, and only those (and attention modules) are quantized.',
  ]);
});

it('is silent when the router is an nn.Linear', () => {
  const linearRouter = tinyTree([['', 'M'], ['mlp', 'MoE'], ['mlp.gate', 'LinearRouter'], ['mlp.up', 'Linear']]);
  expect(runLint(ignoreWithoutEffect, linearRouter, ['Linear'], ['re:.*mlp.gate$'])).toEqual([]);
});
