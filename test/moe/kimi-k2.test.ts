import { expect, it } from 'vitest';
import { classIsA, classOf, treeSize } from '../../src/model/module-tree.js';
import { resolveMoeRewrites } from '../../src/moe/resolve.js';
import { applyRewrites, rewriteCounts } from '../../src/moe/unpack.js';
import { kimiK2Tree, settings } from './helpers.js';

it('unpacks a Kimi-K2-sized model: 60 blocks × 384 experts × 3 Linear', () => {
  const tree = kimiK2Tree();
  const { value, diagnostics } = resolveMoeRewrites(tree, settings());
  expect(diagnostics).toEqual([]);
  expect(rewriteCounts(value)).toEqual({
    blocks: 60,
    unpacked: 60,
    routeAll: 0,
    expertsUnpacked: 23040,
    linearAdded: 69120,
    modulesAdded: 92160,
  });
  const after = applyRewrites(tree, value);
  expect(treeSize(after)).toBe(treeSize(tree) + 92160);
  let linear = 0;
  for (let i = 0; i < treeSize(after); i++) if (classIsA(classOf(after, i), 'Linear')) linear++;
  expect(linear).toBe(61 * 5 + 61 * 3 + 69120 + 1);
  expect(after.names[treeSize(after) - 1]).toBe('lm_head');
  let broken = 0;
  for (let i = 1; i < treeSize(after); i++) {
    const parent = after.parents[i]!;
    if (parent >= i || !after.names[i]!.startsWith(`${after.names[parent]}${parent === 0 ? '' : '.'}`)) broken++;
    if (after.paramStart[i]! < after.paramStart[i - 1]!) broken++;
  }
  expect(broken).toBe(0);
  expect(after.paramStart[treeSize(after)]).toBe(after.params.length);
});
