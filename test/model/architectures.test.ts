import { describe, expect, it } from 'vitest';
import { expandConfig } from '../../src/model/architectures/index.js';
import { classOf, paramsOf, treeSize, type ModuleTree } from '../../src/model/module-tree.js';
import type { OracleTreeJson } from '../../src/model/from-tree-json.js';
import { treeFixtures } from './fixtures.js';

/** The tree in the dump format, for a readable first difference. */
function dumpOf(tree: ModuleTree): OracleTreeJson {
  const classes: Record<string, readonly string[]> = {};
  const modules: [string, string][] = [];
  const params: [string, readonly number[], string][] = [];
  for (let i = 0; i < treeSize(tree); i++) {
    const c = classOf(tree, i);
    classes[c.name] = c.mro;
    modules.push([tree.names[i]!, c.name]);
    const prefix = tree.names[i] === '' ? '' : `${tree.names[i]}.`;
    for (const p of paramsOf(tree, i)) params.push([`${prefix}${p.name}`, p.shape, p.dtype]);
  }
  return { classes, modules, params };
}

function firstDifference<T>(a: readonly T[], b: readonly T[]): string | undefined {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return `#${i}: got ${JSON.stringify(a[i])}, want ${JSON.stringify(b[i])}`;
  }
  return undefined;
}

describe.each([['oracle'], ['trees']] as const)('descriptors reproduce %s dumps', (group) => {
  for (const fx of treeFixtures(group)) {
    it(fx.id, () => {
      const { value, diagnostics } = expandConfig(fx.config);
      expect(diagnostics).toEqual([]);
      const got = dumpOf(value!.tree);
      expect(firstDifference(got.modules, fx.tree.modules)).toBeUndefined();
      expect(firstDifference(got.params, fx.tree.params)).toBeUndefined();
      for (const [, cls] of fx.tree.modules) expect(got.classes[cls]).toEqual(fx.tree.classes[cls]);
    });
  }
});

/** Lists transformers derives in `__post_init__` when config.json omits them, as published configs often do. */
const DERIVED = ['layer_types', 'mlp_layer_types', 'moe_layers', 'no_rope_layers', 'indexer_types'];

describe('descriptors derive what published configs omit', () => {
  for (const fx of treeFixtures('trees')) {
    if (!DERIVED.some((k) => k in fx.config)) continue;
    it(fx.id, () => {
      const stripped = Object.fromEntries(Object.entries(fx.config).filter(([k]) => !DERIVED.includes(k)));
      const { value, diagnostics } = expandConfig(stripped);
      expect(diagnostics).toEqual([]);
      const got = dumpOf(value!.tree);
      expect(firstDifference(got.modules, fx.tree.modules)).toBeUndefined();
      expect(firstDifference(got.params, fx.tree.params)).toBeUndefined();
    });
  }

  it('reads either spelling of an attribute_map key (num_experts / num_local_experts)', () => {
    const fx = treeFixtures('oracle').find((f) => f.id.startsWith('Qwen__Qwen3-30B-A3B'))!;
    const { num_local_experts: experts, ...rest } = fx.config;
    const { value } = expandConfig({ ...rest, num_experts: experts });
    expect(firstDifference(dumpOf(value!.tree).params, fx.tree.params)).toBeUndefined();
  });
});
