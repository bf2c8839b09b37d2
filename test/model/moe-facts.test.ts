import { describe, expect, it } from 'vitest';
import { expandConfig } from '../../src/model/architectures/index.js';
import { classOf } from '../../src/model/module-tree.js';
import { detectMoeLike } from '../../src/moe/detect.js';
import { expertShape } from '../../src/moe/expert-linears.js';
import { treeFixtures } from './fixtures.js';

/**
 * The descriptors' MoE facts must agree with what the MoE stage finds in
 * the tree on its own (block, experts, router) and with the shapes it
 * derives when unpacking the fused parameters.
 */
describe('MoE facts agree with detection from the tree', () => {
  for (const fx of [...treeFixtures('oracle'), ...treeFixtures('trees')]) {
    it(fx.id, () => {
      const { tree, moe } = expandConfig(fx.config).value!;
      const detected = detectMoeLike(tree);
      expect(moe.blocks.map((b) => [b.block, b.experts])).toEqual(detected.map((d) => [d.index, d.experts.index]));
      expect(moe.blocks.map((b) => tree.names[b.router])).toEqual(detected.map((d) => d.router.name));
      for (const b of moe.blocks) {
        expect(b.numExperts).toBe(tree.params[tree.paramStart[b.experts]!]!.shape[0]);
        const shape = expertShape(tree, b.experts, { kind: 'fused', ...b.layout })!;
        expect(b.expertLinears.map((l) => [l.name, l.shape, l.bias])).toEqual(shape.linears.map((l) => [l.name, l.weight.shape, l.bias !== undefined]));
        if (b.sharedExperts >= 0) expect(classOf(tree, b.sharedExperts).mro).not.toContain('Linear');
        if (b.sharedExpertGate >= 0) expect(classOf(tree, b.sharedExpertGate).name).toBe('Linear');
      }
    });
  }
});
