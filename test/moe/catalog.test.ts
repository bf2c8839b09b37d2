import { describe, expect, it } from 'vitest';
import { classIsA, classOf, indexByName, localName } from '../../src/model/module-tree.js';
import { MOE_CATALOG, catalogEntryForBlock } from '../../src/moe/catalog.js';
import { FUSED_EXPERTS_CLASSES } from '../../src/moe/fused-experts.js';
import { resolveMoeRewrites } from '../../src/moe/resolve.js';
import { applyRewrites } from '../../src/moe/unpack.js';
import { architectureTrees, settings } from './helpers.js';

const REQUIRED = [
  'Qwen2MoeSparseMoeBlock',
  'Qwen3MoeSparseMoeBlock',
  'Qwen3NextSparseMoeBlock',
  'Qwen3VLMoeTextSparseMoeBlock',
  'MixtralSparseMoeBlock',
  'DeepseekV3MoE',
  'Glm4MoeMoE',
  'Glm4MoeLiteMoE',
  'GlmMoeDsaMoE',
  'GptOssMLP',
  'Llama4TextMoe',
  'OlmoeSparseMoeBlock',
  'GraniteMoeMoE',
  'PhimoeSparseMoeBlock',
];

describe('MoE catalog', () => {
  it('covers every supported block class exactly once', () => {
    expect(MOE_CATALOG.map((e) => e.blockClass).sort()).toEqual([...REQUIRED].sort());
    expect(new Set(MOE_CATALOG.map((e) => e.experts.class)).size).toBe(MOE_CATALOG.length);
  });

  it('records the silent skips of llm-compressor 0.11', () => {
    const skipped = MOE_CATALOG.filter((e) => e.llmCompressor.legacy === null).map((e) => e.blockClass);
    expect(skipped.sort()).toEqual(
      ['GptOssMLP', 'GraniteMoeMoE', 'MixtralSparseMoeBlock', 'OlmoeSparseMoeBlock', 'PhimoeSparseMoeBlock', 'Qwen2MoeSparseMoeBlock'].sort(),
    );
    expect(catalogEntryForBlock('Glm4MoeLiteMoE')!.llmCompressor.legacy).toEqual({
      class: 'CalibrationGlm4MoeLiteMoE',
      permanent: true,
      unpacksExperts: true,
    });
    expect(catalogEntryForBlock('Llama4TextMoe')!.llmCompressor.linearizedAs).toBe('Llama4LinearExperts');
  });

  // Trees transformers built from each architecture's config (see test/fixtures/scripts/dump_trees.py).
  for (const fx of architectureTrees()) {
    it(`matches the tree of ${fx.id}`, () => {
      const tree = fx.tree;
      // A multimodal config (Llama4ForConditionalGeneration) holds the language model's keys in text_config.
      const config = (fx.config['text_config'] as Record<string, unknown> | undefined) ?? fx.config;
      const { value, diagnostics } = resolveMoeRewrites(tree, settings());
      expect(diagnostics).toEqual([]);
      const byName = indexByName(tree);
      for (const r of value.rewrites) {
        const entry = catalogEntryForBlock(r.class)!;
        expect(r.entry).toBe(entry);
        expect(r.rewrite).toBe('unpack-fused-experts');
        expect(r.experts.class).toBe(entry.experts.class);
        expect(localName(r.experts.name)).toBe(entry.experts.attribute);
        expect(r.router?.kind).toBe('module');
        expect(localName(r.router!.name)).toBe(entry.router.attribute);
        expect(r.router!.class).toBe(entry.router.class);
        expect(classIsA(classOf(tree, byName.get(r.router!.name)!), 'Linear')).toBe(entry.router.isLinear);
        for (const shared of entry.sharedExperts) expect(byName.has(`${r.module}.${shared}`)).toBe(true);
        if (entry.sharedExpertGate) {
          expect(classOf(tree, byName.get(`${r.module}.${entry.sharedExpertGate}`)!).name).toBe('Linear');
        }
        const numExperts = entry.config.numExperts.map((k) => config[k]).find((v) => v !== undefined);
        expect(numExperts).toBe(r.experts.count);
        expect(typeof config[entry.config.topK]).toBe('number');
        expect(config[entry.config.intermediate]).toBe(r.expert!.intermediate);
        expect(config['hidden_size']).toBe(r.expert!.hidden);
        if (entry.router.groups) {
          for (const key of ['n_group', 'topk_group', 'routed_scaling_factor']) expect(typeof config[key]).toBe('number');
        }
        if (entry.router.normalisation === 'config:norm_topk_prob') expect(typeof config['norm_topk_prob']).toBe('boolean');
      }
      const sizes = applyRewrites(tree, value);
      expect(sizes.names.length).toBeGreaterThanOrEqual(tree.names.length);
    });
  }
});

describe('transformers fused experts classes', () => {
  it('agree with the catalog on every decorated experts class', () => {
    for (const entry of MOE_CATALOG) {
      const known = FUSED_EXPERTS_CLASSES.get(entry.experts.class);
      if (entry.experts.class === 'Llama4TextExperts') {
        expect(known).toBeUndefined();
        continue;
      }
      expect(known?.layout).toEqual(entry.experts.layout);
      expect(known?.unpackedActFn).toBe(entry.experts.unpackedActFn);
    }
  });
});

it('docs/moe.md states the number of transformers fused experts classes', async () => {
  const { readFileSync } = await import('node:fs');
  const docs = readFileSync(new URL('../../docs/moe.md', import.meta.url), 'utf8');
  expect(docs).toContain(`all ${FUSED_EXPERTS_CLASSES.size} fused experts classes`);
});
