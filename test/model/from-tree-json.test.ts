import { describe, expect, it } from 'vitest';
import { treeFromOracleJson } from '../../src/model/from-tree-json.js';
import { classOf, paramsOf, treeSize } from '../../src/model/module-tree.js';
import { treeFixtures } from './fixtures.js';

describe('treeFromOracleJson', () => {
  for (const fx of treeFixtures('oracle')) {
    it(`round-trips ${fx.id}`, () => {
      const tree = treeFromOracleJson(fx.tree);
      expect(treeSize(tree)).toBe(fx.tree.modules.length);
      const modules = tree.names.map((n, i) => [n, classOf(tree, i).name]);
      expect(modules).toEqual(fx.tree.modules);
      for (let i = 0; i < treeSize(tree); i++) expect(classOf(tree, i).mro).toEqual(fx.tree.classes[classOf(tree, i).name]);
      const params = tree.names.flatMap((n, i) =>
        paramsOf(tree, i).map((p) => [n === '' ? p.name : `${n}.${p.name}`, p.shape, p.dtype]),
      );
      expect(params).toEqual(fx.tree.params);
      for (let i = 1; i < treeSize(tree); i++) expect(tree.names[i]!.startsWith(tree.names[tree.parents[i]!]!)).toBe(true);
    });
  }
});
