import { expect, it } from 'vitest';
import { compressNames, summarizeNames } from '../../src/match/compress-names.js';

const expand = (layers: number[], experts: number, projs: string[]) =>
  layers.flatMap((l) => Array.from({ length: experts }, (_, e) => projs.map((p) => `model.layers.${l}.mlp.experts.${e}.${p}`)).flat());

it('compresses a Cartesian product into one pattern', () => {
  const names = expand([1, 2, 3, 4, 5], 64, ['gate_proj', 'up_proj', 'down_proj']);
  expect(compressNames(names)).toEqual([{ pattern: 'model.layers.{1..5}.mlp.experts.{0..63}.{gate,up,down}_proj', count: 960, first: 0, key: '' }]);
});

it('keeps groups exact when the product is incomplete, in input order', () => {
  const names = ['model.layers.0.mlp.gate_proj', ...expand([1, 2], 2, ['up_proj']), 'model.layers.3.mlp.experts.0.up_proj', 'lm_head'];
  expect(compressNames(names).map((g) => `${g.pattern} ×${g.count}`)).toEqual([
    'model.layers.0.mlp.gate_proj ×1',
    'model.layers.{1,2}.mlp.experts.{0,1}.up_proj ×4',
    'model.layers.3.mlp.experts.0.up_proj ×1',
    'lm_head ×1',
  ]);
});

it('never merges names with different keys, and writes sparse integers as lists', () => {
  const names = ['a.1', 'a.3', 'a.4', 'a.5', 'a.7'];
  expect(compressNames(names).map((g) => g.pattern)).toEqual(['a.{1,3..5,7}']);
  expect(compressNames(names, (i) => (i === 0 ? 'x' : 'y')).map((g) => g.pattern)).toEqual(['a.1', 'a.{3..5,7}']);
});

it('summarizes long lists', () => {
  expect(summarizeNames(['a.x', 'b.y', 'c.z', 'd.w'], 2)).toBe('a.x, b.y … (2 more)');
  expect(summarizeNames(['', 'a.x.y'])).toBe('(root), a.x.y');
});

it('can keep differing words apart except in the last component', () => {
  const names = ['m.experts.act_fn', 'm.shared_experts.act_fn', 'm.1.act_fn', 'm.2.act_fn'];
  expect(compressNames(names).map((g) => g.pattern)).toEqual(['m.{experts,shared_experts,1,2}.act_fn']);
  expect(compressNames(names, undefined, { wordsOnlyLast: true }).map((g) => g.pattern)).toEqual(['m.experts.act_fn', 'm.shared_experts.act_fn', 'm.{1,2}.act_fn']);
});
