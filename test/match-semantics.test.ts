/** compressed-tensors matching rules, each on a small tree where it decides the outcome. */
import { describe, expect, it } from 'vitest';
import { assignSchemes, comparePrecedence, couldNotMatchMessage, matchNamedModules } from '../src/match/match.js';
import { kvCacheModules } from '../src/match/attention.js';
import { decoderTree, group, patterns, tinyTree, weightArgs } from './match/tiny-tree.js';

const names = (tree: { names: readonly string[] }, ms: Iterable<number>) => [...ms].map((m) => tree.names[m]);

describe('matchNamedModules', () => {
  const tree = decoderTree(2, 1);

  it('re: is re.match: anchored at the start, no implicit end', () => {
    const r = matchNamedModules(tree, patterns(['re:.*mlp.gate']), []);
    expect(names(tree, r.modules)).toEqual(['model.layers.0.mlp.gate_proj', 'model.layers.1.mlp.gate']);
    expect(matchNamedModules(tree, patterns(['re:mlp']), []).modules.length).toBe(0);
  });

  it('plain strings are exact full names or class names anywhere in the MRO', () => {
    expect(names(tree, matchNamedModules(tree, patterns(['lm_head']), []).modules)).toEqual(['lm_head']);
    expect(matchNamedModules(tree, patterns(['mlp.gate']), []).modules.length).toBe(0);
    const sub = tinyTree([['', 'M'], ['a', 'LinearRouter'], ['b', 'Linear'], ['c', 'TopkRouter']]);
    expect(names(sub, matchNamedModules(sub, patterns(['Linear']), []).modules)).toEqual(['a', 'b']);
  });

  it('records only the first target per module, so a shadowed target is reported as unmatched', () => {
    const r = matchNamedModules(tree, patterns(['Linear', 're:.*down_proj$']), []);
    expect(r.unmatchedTargets).toEqual([1]);
    expect(couldNotMatchMessage(tree, 're:.*down_proj$')).toBe('Could not match `re:.*down_proj$` in instance of ForCausalLM');
  });

  it('ignored modules still count as matches for their target', () => {
    const r = matchNamedModules(tree, patterns(['lm_head']), patterns(['re:.*head']));
    expect(r.modules.length).toBe(0);
    expect(r.unmatchedTargets).toEqual([]);
    expect(r.ignored).toEqual([{ module: tree.names.indexOf('lm_head'), target: 0, ignore: 0 }]);
  });

  it('ignore entries may be class names', () => {
    const r = matchNamedModules(tree, patterns(['re:.*self_attn.*']), patterns(['LlamaAttention']));
    expect(names(tree, r.modules)).toEqual(tree.names.filter((n) => /self_attn\.\w+$/.test(n)));
  });

  it('InternalModule never matches', () => {
    const t = tinyTree([['', 'M'], ['h', 'Helper'], ['x', 'Linear']]);
    expect(names(t, matchNamedModules(t, patterns(['re:.*', 'InternalModule']), []).modules)).toEqual(['', 'x']);
  });
});

describe('assignSchemes', () => {
  const tree = decoderTree(2, 1);
  const w4 = weightArgs('group', 32);

  it('orders candidates: exact names, then re: alphabetically, then classes', () => {
    const order = ['Linear', 're:b', 'lm_head', 're:a', 'Embedding'].sort(comparePrecedence);
    expect(order).toEqual(['Embedding', 'Linear', 'lm_head', 're:a', 're:b']);
    const r = assignSchemes(tree, [group('first', ['re:.*proj$', 'Linear'], w4), group('second', ['re:.*o_proj$'], w4)], []);
    const o = tree.names.indexOf('model.layers.0.self_attn.o_proj');
    const k = [...r.quantized.modules].indexOf(o);
    // "re:.*o_proj$" < "re:.*proj$" alphabetically, so the second group wins although it comes later.
    expect(r.targets[r.quantized.targets[k]!]!.pattern.text).toBe('re:.*o_proj$');
    expect(r.quantized.groups[k]).toBe(1);
  });

  it('gives a target string listed in two groups to the later group', () => {
    const r = assignSchemes(tree, [group('a', ['Linear'], w4), group('b', ['Linear'], w4)], []);
    expect(r.targets.map((t) => [t.pattern.text, t.group])).toEqual([['Linear', 1]]);
    expect(new Set(r.quantized.groups)).toEqual(new Set([1]));
  });

  it('attaches schemes only to Linear/Embedding subclasses and reports the other matched modules', () => {
    const r = assignSchemes(tree, [group('g', ['re:.*mlp.*'], w4)], []);
    expect(names(tree, r.skipped.modules)).toEqual(['model.layers.0.mlp', 'model.layers.1.mlp', 'model.layers.1.mlp.gate', 'model.layers.1.mlp.experts', 'model.layers.1.mlp.experts.0', 'model.layers.1.mlp.experts.1']);
    expect(r.quantized.modules.length).toBe(3 + 6);
  });

  it('gives attention modules a scheme only when matched narrowly', () => {
    const input = { ...weightArgs('tensor'), dynamic: false };
    const narrow = assignSchemes(tree, [group('attn', ['LlamaAttention'], null, input)], []);
    expect(names(tree, narrow.attention.modules)).toEqual(['model.layers.0.self_attn', 'model.layers.1.self_attn']);
    const broad = assignSchemes(tree, [group('attn', ['re:.*self_attn.*'], null, input)], []);
    expect(broad.attention.modules.length).toBe(0);
  });

  it('finds every cached attention module for a kv-cache scheme', () => {
    const t = tinyTree([['', 'M'], ['blk', 'Block'], ['blk.attn', 'MyAttention'], ['blk.attn.k_proj', 'Linear'], ['blk.self_attn', 'OtherAttention'], ['blk.self_attn.qkv_proj', 'Linear'], ['blk.mix', 'MixAttention']]);
    const kv = kvCacheModules(t);
    expect(names(t, kv.modules)).toEqual(['blk.attn', 'blk.self_attn']);
    expect(names(t, kv.outsideSavedTargets)).toEqual(['blk.attn']);
  });
});
