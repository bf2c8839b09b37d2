import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DESCRIPTORS, expandConfig } from '../../src/model/architectures/index.js';
import { localName, treeSize } from '../../src/model/module-tree.js';

/** Small random values for every size field any descriptor reads. */
const sizes = fc.record({
  num_hidden_layers: fc.integer({ min: 1, max: 6 }),
  hidden_size: fc.integer({ min: 1, max: 8 }).map((x) => x * 8),
  num_attention_heads: fc.constantFrom(1, 2, 4),
  num_key_value_heads: fc.constantFrom(1, 2),
  head_dim: fc.integer({ min: 1, max: 16 }),
  intermediate_size: fc.integer({ min: 1, max: 64 }),
  vocab_size: fc.integer({ min: 1, max: 100 }),
  num_experts: fc.integer({ min: 0, max: 5 }),
  num_local_experts: fc.integer({ min: 1, max: 5 }),
  n_routed_experts: fc.integer({ min: 1, max: 5 }),
  moe_intermediate_size: fc.integer({ min: 1, max: 32 }),
  n_shared_experts: fc.integer({ min: 1, max: 2 }),
  first_k_dense_replace: fc.integer({ min: 0, max: 6 }),
  decoder_sparse_step: fc.integer({ min: 1, max: 3 }),
  interleave_moe_layer_step: fc.integer({ min: 1, max: 3 }),
  q_lora_rank: fc.option(fc.integer({ min: 1, max: 16 }), { nil: null }),
  tie_word_embeddings: fc.boolean(),
});

describe('every descriptor builds a well-formed tree for any sizes', () => {
  for (const type of DESCRIPTORS.keys()) {
    it(type, () => {
      fc.assert(
        fc.property(sizes, (s) => {
          const { value, diagnostics } = expandConfig({ ...s, model_type: type });
          expect(diagnostics).toEqual([]);
          const tree = value!.tree;
          const seen = new Set<string>();
          for (let i = 0; i < treeSize(tree); i++) {
            const name = tree.names[i]!;
            expect(seen.has(name)).toBe(false);
            seen.add(name);
            if (i > 0) {
              const parent = tree.names[tree.parents[i]!]!;
              expect(tree.parents[i]).toBeLessThan(i);
              expect(name).toBe(parent === '' ? localName(name) : `${parent}.${localName(name)}`);
            }
            expect(tree.paramStart[i + 1]).toBeGreaterThanOrEqual(tree.paramStart[i]!);
          }
          expect(tree.paramStart[treeSize(tree)]).toBe(tree.params.length);
          for (const p of tree.params) expect(p.shape.every((d) => Number.isInteger(d) && d >= 0)).toBe(true);
          for (const b of value!.moe.blocks) {
            expect(localName(tree.names[b.experts]!)).toBe('experts');
            expect(tree.parents[b.experts]).toBe(b.block);
            expect(tree.parents[b.router]).toBe(b.block);
          }
        }),
        { numRuns: 40 },
      );
    });
  }
});
