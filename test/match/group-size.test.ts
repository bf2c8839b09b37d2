import { expect, it } from 'vitest';
import { checkGroupSizeDivisibility, groupSizeLines, groupSizeOffenders, narrowGroupLayers } from '../../src/match/group-size.js';
import { assignSchemes } from '../../src/match/match.js';
import { group, tinyTree, weightArgs } from './tiny-tree.js';

const tree = tinyTree(
  [['', 'M'], ['a', 'Linear'], ['b', 'Linear'], ['c', 'Linear'], ['d', 'Linear']],
  {},
  { a: [8, 256], b: [8, 200], c: [8, 100], d: [8, 96] },
);

it('rejects columns >= group_size that are not a multiple, for group and tensor_group strategies', () => {
  const groups = [group('g', ['Linear'], weightArgs('group', 128))];
  const a = assignSchemes(tree, groups, []);
  expect(groupSizeLines(tree, groupSizeOffenders(tree, a, groups))).toEqual(['  - b (columns=200, group_size=128)']);
  const nvfp4 = [group('g', ['Linear'], weightArgs('tensor_group', 16))];
  expect(groupSizeLines(tree, groupSizeOffenders(tree, assignSchemes(tree, nvfp4, []), nvfp4))).toEqual(['  - b (columns=200, group_size=16)', '  - c (columns=100, group_size=16)']);
});

it('reports one error per group unless bypassed, and never checks block or channel strategies', () => {
  const groups = [group('g', ['Linear'], weightArgs('group', 32))];
  const a = assignSchemes(tree, groups, []);
  const ds = checkGroupSizeDivisibility(tree, a, groups);
  expect(ds.map((d) => [d.code, d.message, d.notes?.map((n) => n.message)])).toEqual([
    [
      'group-size-not-divisible',
      'The following layers have weight column counts not divisible by group_size. 2 layers of config group "g" would make llm-compressor stop at initialize; add them to the modifier\'s ignore list, or set bypass_divisibility_checks=True.',
      ['  - b (columns=200, group_size=32)', '  - c (columns=100, group_size=32)'],
    ],
  ]);
  expect(checkGroupSizeDivisibility(tree, a, groups, true)).toEqual([]);
  const channel = [group('g', ['Linear'], weightArgs('channel'))];
  expect(checkGroupSizeDivisibility(tree, assignSchemes(tree, channel, []), channel)).toEqual([]);
});

it('reports layers narrower than their group as an error even when the divisibility check is bypassed', () => {
  const groups = [group('g', ['Linear'], weightArgs('group', 128))];
  const a = assignSchemes(tree, groups, []);
  expect(groupSizeLines(tree, narrowGroupLayers(tree, a, groups))).toEqual(['  - c (columns=100, group_size=128)', '  - d (columns=96, group_size=128)']);
  for (const bypass of [false, true]) {
    const ds = checkGroupSizeDivisibility(tree, a, groups, bypass);
    expect(ds.map((d) => d.code)).toEqual(bypass ? ['group-size-exceeds-columns'] : ['group-size-exceeds-columns', 'group-size-not-divisible']);
    expect(ds[0]!.notes?.map((n) => n.message)).toEqual(['  - c (columns=100, group_size=128)', '  - d (columns=96, group_size=128)']);
  }
});
