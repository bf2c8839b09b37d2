import { describe, expect, it } from 'vitest';
import { classIsA, classOf, paramsOf, treeSize, type ModuleTree } from '../../src/model/module-tree.js';
import { resolveMoeRewrites } from '../../src/moe/resolve.js';
import { rewriteModel } from '../../src/moe/rewrite-model.js';
import { applyRewrites, legacyReplaced, linearizedModules, rewriteCounts, rewriteSummaries } from '../../src/moe/unpack.js';
import { ORACLE_MODELS, oracleLegacy, oracleLinearized, oracleTree, settings } from './helpers.js';

const linearCount = (tree: ModuleTree): number => {
  let n = 0;
  for (let i = 0; i < treeSize(tree); i++) if (classIsA(classOf(tree, i), 'Linear')) n++;
  return n;
};

describe('MoE rewrites against llm-compressor', () => {
  for (const model of ORACLE_MODELS) {
    describe(model, () => {
      const tree = oracleTree(model);
      const { value: resolution, diagnostics } = resolveMoeRewrites(tree, settings());
      const linearized = oracleLinearized(model);

      it('resolves every MoE block without diagnostics', () => {
        expect(diagnostics).toEqual([]);
        expect(resolution.unsupported).toEqual([]);
      });

      it('unpacks exactly the experts llm-compressor main linearizes', () => {
        expect(linearizedModules(resolution)).toEqual(linearized.replaced);
      });

      it('names what llm-compressor 0.11 would have wrapped', () => {
        expect(legacyReplaced(resolution)).toEqual(oracleLegacy(model).legacy_replaced);
      });

      it('builds the same module tree as the linearized model, in order', () => {
        const after = applyRewrites(tree, resolution);
        expect(after.names.map((n, i) => [n, classOf(after, i).name])).toEqual(linearized.modules);
        expect(linearCount(after) - linearCount(tree)).toBe(rewriteCounts(resolution).linearAdded);
        for (let i = 1; i < treeSize(after); i++) {
          expect(after.names[i]!.startsWith(`${after.names[after.parents[i]!]}`)).toBe(true);
        }
      });
    });
  }

  it('GLM-4.7-Flash: 46 Glm4MoeLiteMoE blocks, 64 experts each, 377 → 9,209 Linear', () => {
    const tree = oracleTree('zai-org__GLM-4.7-Flash');
    const { value } = resolveMoeRewrites(tree, settings());
    const summaries = rewriteSummaries(value);
    expect(summaries).toHaveLength(46);
    expect(new Set(summaries.map((s) => `${s.class} ${s.rewrite} ${s.experts} ${s.declared}`))).toEqual(
      new Set(['Glm4MoeLiteMoE unpack-fused-experts 64 false']),
    );
    expect(summaries[0]).toMatchObject({ module: 'model.layers.1.mlp', expertsModule: 'model.layers.1.mlp.experts' });
    expect(value.rewrites[0]!.router).toEqual({ name: 'model.layers.1.mlp.gate', kind: 'module', class: 'Glm4MoeLiteTopkRouter' });
    expect(rewriteCounts(value)).toEqual({
      blocks: 46,
      unpacked: 46,
      routeAll: 0,
      expertsUnpacked: 2944,
      linearAdded: 8832,
      modulesAdded: 2944 * 4,
    });
    const after = applyRewrites(tree, value);
    expect(linearCount(tree)).toBe(377);
    expect(linearCount(after)).toBe(9209);
    const index = after.names.indexOf('model.layers.1.mlp.experts.5.gate_proj');
    expect(paramsOf(after, index)).toEqual([{ name: 'weight', shape: [1536, 2048], dtype: 'bfloat16' }]);
    const down = after.names.indexOf('model.layers.46.mlp.experts.63.down_proj');
    expect(paramsOf(after, down)).toEqual([{ name: 'weight', shape: [2048, 1536], dtype: 'bfloat16' }]);
    expect(paramsOf(after, after.names.indexOf('model.layers.1.mlp.experts'))).toEqual([]);
    expect(classOf(after, after.names.indexOf('model.layers.1.mlp.experts')).mro).toEqual(['LinearExperts2D', 'ModuleList', 'Module']);
    expect(classOf(after, after.names.indexOf('model.layers.1.mlp.experts.0')).mro).toEqual([
      'ExpertMLPWithGate',
      'ExpertMLP',
      'Module',
    ]);
  });

  it('rewriteModel gathers the rewritten tree and its summaries in one call', () => {
    const { value, diagnostics } = rewriteModel(oracleTree('Qwen__Qwen3-30B-A3B'), settings());
    const linearized = oracleLinearized('Qwen__Qwen3-30B-A3B');
    expect(diagnostics).toEqual([]);
    expect(value.tree.names).toEqual(linearized.modules.map(([n]) => n));
    expect(value.linearized).toEqual(linearized.replaced);
    expect(value.legacyReplaced).toEqual(oracleLegacy('Qwen__Qwen3-30B-A3B').legacy_replaced);
    expect(value.rewrites).toHaveLength(48);
    expect(value.counts).toMatchObject({ blocks: 48, expertsUnpacked: 48 * 128, linearAdded: 48 * 128 * 3 });
  });

  it('leaves a dense model untouched', () => {
    const tree = oracleTree('meta-llama__Llama-3.1-8B');
    const { value } = resolveMoeRewrites(tree, settings());
    expect(value.rewrites).toEqual([]);
    expect(applyRewrites(tree, value)).toBe(tree);
  });
});
