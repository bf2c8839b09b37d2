/**
 * Ground truth: for every oracle model and recipe, quantc's matching equals
 * what compressed-tensors computed on the same trees (before and after
 * llm-compressor unpacked the experts).
 */
import { describe, expect, it } from 'vitest';
import { assignSchemes, couldNotMatchMessage, matchNamedModules } from '../src/match/match.js';
import { compilePatterns, patternRef } from '../src/match/pattern.js';
import type { QuantizationScheme } from '../src/ir/types.js';
import { oracleModels } from './match/oracle.js';

const SCHEME: QuantizationScheme = { targets: [], weights: null, input_activations: null, output_activations: null, format: null };

describe.each(oracleModels())('$id', (model) => {
  for (const [id, recipe] of Object.entries(model.recipes)) {
    for (const phase of ['before', 'after_head'] as const) {
      it(`${id} on the ${phase} tree`, () => {
        const tree = phase === 'before' ? model.before : model.afterHead;
        const expected = recipe[phase];
        const targets = compilePatterns(recipe.targets.map((t) => patternRef(t)));
        const ignore = compilePatterns(recipe.ignore.map((t) => patternRef(t)));
        expect([...targets.diagnostics, ...ignore.diagnostics]).toEqual([]);
        const named = matchNamedModules(tree, targets.value, ignore.value);
        expect([...named.modules]).toEqual(expected.matched);
        const assigned = assignSchemes(tree, [{ name: 'group_0', targets: targets.value, scheme: SCHEME }], ignore.value);
        expect([...assigned.match.modules]).toEqual(expected.matched);
        expect([...assigned.quantized.modules]).toEqual(expected.quantized);
        expect([...assigned.attention.modules]).toEqual(expected.attention_kv);
        const warnings = named.unmatchedTargets.map((t) => couldNotMatchMessage(tree, recipe.targets[t]!));
        const logged = expected.log.filter((l) => l.includes('Could not match')).map((l) => l.replace(/^.* - /, ''));
        expect(warnings.sort()).toEqual(logged.sort());
      });
    }
  }
});
