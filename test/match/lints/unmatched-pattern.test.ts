import { expect, it } from 'vitest';
import { unmatchedPatterns } from '../../../src/match/lints/unmatched-pattern.js';
import { decoderTree } from '../tiny-tree.js';
import { runLint } from './harness.js';

const tree = decoderTree(3, 1);

it('warns for targets and ignore entries that match nothing, with the nearest name', () => {
  expect(runLint(unmatchedPatterns, tree, ['Linear', 'LlamaAtention', 'model.layers.2.mlp.experts.1.gaet_proj'], ['re:.*mlp.gaet$', 'lm_head'])).toMatchInlineSnapshot(`
    [
      "warning target-matches-nothing: The target "LlamaAtention" matches nothing: no module is named "LlamaAtention" and no module's class (or base class) is "LlamaAtention". Did you mean "LlamaAttention"?",
      "warning target-matches-nothing: The target "model.layers.2.mlp.experts.1.gaet_proj" matches nothing: no module is named "model.layers.2.mlp.experts.1.gaet_proj" and no module's class (or base class) is "model.layers.2.mlp.experts.1.gaet_proj". Did you mean "model.layers.2.mlp.experts.1.gate_proj"?",
      "warning ignore-matches-nothing: The ignore entry "re:.*mlp.gaet$" matches nothing, so it ignores nothing: no module name matches it. Did you mean "re:.*mlp.gate$"?",
    ]
  `);
});

it('is silent when every pattern matches, and leaves lookalikes to their own lints', () => {
  expect(runLint(unmatchedPatterns, tree, ['Linear', 're:.*q_proj$'], ['lm_head', '.*gate', 'layers.0.mlp'])).toEqual([]);
});
