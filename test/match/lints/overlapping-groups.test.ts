import { expect, it } from 'vitest';
import { overlappingGroups } from '../../../src/match/lints/overlapping-groups.js';
import { decoderTree, group, weightArgs } from '../tiny-tree.js';
import { runLint } from './harness.js';

const tree = decoderTree(2);
const w4 = weightArgs('group', 32);
const w8 = weightArgs('channel');

it('warns when two groups claim a module, and when vLLM would pick the other group', () => {
  expect(runLint(overlappingGroups, tree, [group('int4', ['re:.*proj$'], w4), group('int8', ['re:.*o_proj$'], w8)])).toMatchInlineSnapshot(`
    [
      "warning module-claimed-by-several-groups: 2 modules are matched by config groups "int4" and "int8" (model.layers.{0,1}.self_attn.o_proj); compressed-tensors gives them "int8"'s scheme because "re:.*o_proj$" takes precedence (exact names, then re: patterns in alphabetical order, then class names).
      note: also matched by "re:.*proj$" in "int4"",
      "warning scheme-winner-differs-in-vllm: vLLM takes the first matching target in config order, so it reads 2 modules (model.layers.{0,1}.self_attn.o_proj) with "int4"'s scheme ("re:.*proj$") while llm-compressor quantizes them with "int8"'s ("re:.*o_proj$").
      note: compressed-tensors picks "re:.*o_proj$"",
    ]
  `);
});

it('warns for a target string listed in two groups', () => {
  expect(runLint(overlappingGroups, tree, [group('a', ['Linear'], w4), group('b', ['Linear', 'lm_head'], w8)])).toMatchInlineSnapshot(`
    [
      "warning target-in-several-groups: The target "Linear" is listed in config groups "a" and "b"; compressed-tensors keeps one scheme per target string, the last group's ("b"), so the earlier listing has no effect.
      note: the listing that wins, in "b"",
    ]
  `);
});

it('is silent for disjoint groups', () => {
  expect(runLint(overlappingGroups, tree, [group('attn', ['re:.*self_attn.*'], w4), group('mlp', ['re:.*mlp.*'], w8)])).toEqual([]);
});
