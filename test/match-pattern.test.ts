/** Pattern compilation: regex errors, and the fast paths agreeing with the literal translation. */
import { describe, expect, it } from 'vitest';
import { compilePattern, isDigitInsensitive, patternRef } from '../src/match/pattern.js';
import { digitShapes, matchIndex, patternHits } from '../src/match/match-index.js';
import { oracleModels } from './match/oracle.js';

describe('compilePattern', () => {
  it('reports regexes Python rejects', () => {
    const r = compilePattern(patternRef('re:.*mlp.(gate'));
    expect(r.diagnostics.map((d) => d.code)).toEqual(['regex-invalid']);
    expect(r.value.test).toBeUndefined();
  });

  it('keeps plain patterns plain', () => {
    expect(compilePattern(patternRef('lm_head')).value).toMatchObject({ kind: 'plain', body: 'lm_head' });
  });

  it.each([
    ['.*mlp.gate$', false],
    ['.*self_attn\\.(q|k|v)_proj.*', true],
    ['.*experts\\.\\d+\\.down_proj$', true],
    ['model\\.layers\\.[0-2]\\..*', false],
    ['model.layers.1.*', false],
    ['.*mlp_gate', true],
    ['.*\\d\\.x', false],
    ['a.b', false],
    ['.+x', false],
    ['(?x) a b', false],
  ])('isDigitInsensitive(%s) = %s', (body, expected) => {
    expect(isDigitInsensitive(body)).toBe(expected);
  });
});

const REGEXES = [
  're:.*mlp.gate$', 're:.*mlp.gate', 're:.*experts.*', 're:.*self_attn.(q|k|v|o)_proj$', 're:.*experts\\.\\d+\\.down_proj$',
  're:model\\.layers\\.[0-2]\\..*', 're:.*?shared_experts', 're:model.layers.1.*', 're:.*(gate|up)_proj.*', 're:.*lm_head',
];

describe('fast paths', () => {
  it.each(oracleModels().map((m) => [m.id, m] as const))('agree with the literal re.match translation on %s', (_, model) => {
    for (const tree of [model.before, model.afterHead]) {
      const index = matchIndex(tree);
      for (const text of REGEXES) {
        const p = compilePattern(patternRef(text)).value;
        const expected = tree.names.map((n) => (p.test!(n) ? 1 : 0));
        expect([...patternHits(index, p).bits], text).toEqual(expected);
        if (p.digitInsensitive) {
          const { shapes, shapeOf } = digitShapes(index);
          expect(tree.names.map((_, i) => (p.testPlain!(shapes[shapeOf[i]!]!) ? 1 : 0)), text).toEqual(expected);
        }
      }
    }
  });
});

describe('collapsed-name verdicts', () => {
  it('give the same hits as testing every name, once enough digit-insensitive regexes ask for them', () => {
    const model = oracleModels().find((m) => m.id.startsWith('zai-org'))!;
    const texts = ['experts', 'shared_experts', 'gate_proj', 'up_proj', 'down_proj', 'self_attn', 'mlp', 'layers', 'q_a_proj', 'kv_b_proj'].map((w) => `re:.*${w}.*`);
    const index = matchIndex(model.afterHead);
    for (const text of texts) {
      const p = compilePattern(patternRef(text)).value;
      expect(p.digitInsensitive).toBe(true);
      expect([...patternHits(index, p).bits], text).toEqual(model.afterHead.names.map((n) => (p.test!(n) ? 1 : 0)));
    }
    expect(index.digitShapes).toBeDefined();
  });
});
