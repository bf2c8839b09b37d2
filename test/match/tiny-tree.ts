/** Small hand-written module trees for the matching tests. */
import { treeFromOracleJson } from '../../src/model/from-tree-json.js';
import type { ModuleTree } from '../../src/model/module-tree.js';
import type { QuantizationArgs, QuantizationScheme } from '../../src/ir/types.js';
import type { SchemeGroup } from '../../src/match/match.js';
import { compilePatterns, patternRef } from '../../src/match/pattern.js';

/** Class MROs every tiny tree knows. */
const BASE_CLASSES: Record<string, string[]> = {
  Linear: ['Linear', 'Module'],
  Embedding: ['Embedding', 'Module'],
  ModuleList: ['ModuleList', 'Module'],
  TopkRouter: ['TopkRouter', 'Module'],
  LinearRouter: ['LinearRouter', 'Linear', 'Module'],
  Helper: ['Helper', 'InternalModule', 'Module'],
};

/**
 * A tree from `[name, class]` rows (root first); `weights` gives `[out, in]`
 * weight shapes by module name.
 */
export function tinyTree(
  modules: [string, string][],
  classes: Record<string, string[]> = {},
  weights: Record<string, [number, number]> = {},
): ModuleTree {
  const all: Record<string, string[]> = { ...BASE_CLASSES, ...classes };
  for (const [, c] of modules) all[c] ??= [c, 'Module'];
  const params = Object.entries(weights).map(([n, s]) => [`${n}.weight`, s, 'bfloat16'] as [string, number[], string]);
  return treeFromOracleJson({ classes: all, modules, params });
}

/** A decoder with `layers` layers: attention q/k/v/o, an MLP (dense) or an MoE block with a non-Linear router. */
export function decoderTree(layers: number, moeFrom = layers, experts = 2): ModuleTree {
  const rows: [string, string][] = [['', 'ForCausalLM'], ['model', 'Model'], ['model.embed_tokens', 'Embedding'], ['model.layers', 'ModuleList']];
  const weights: Record<string, [number, number]> = {};
  const linear = (name: string, out = 64, inp = 64) => {
    rows.push([name, 'Linear']);
    weights[name] = [out, inp];
  };
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    rows.push([p, 'DecoderLayer'], [`${p}.self_attn`, 'LlamaAttention']);
    for (const x of ['q', 'k', 'v', 'o']) linear(`${p}.self_attn.${x}_proj`);
    if (l < moeFrom) {
      rows.push([`${p}.mlp`, 'MLP']);
      for (const x of ['gate', 'up']) linear(`${p}.mlp.${x}_proj`, 128, 64);
      linear(`${p}.mlp.down_proj`, 64, 128);
    } else {
      rows.push([`${p}.mlp`, 'SparseMoeBlock'], [`${p}.mlp.gate`, 'TopkRouter'], [`${p}.mlp.experts`, 'ModuleList']);
      for (let e = 0; e < experts; e++) {
        rows.push([`${p}.mlp.experts.${e}`, 'ExpertMLP']);
        for (const x of ['gate', 'up']) linear(`${p}.mlp.experts.${e}.${x}_proj`, 32, 64);
        linear(`${p}.mlp.experts.${e}.down_proj`, 64, 32);
      }
    }
  }
  rows.push(['model.norm', 'RMSNorm']);
  linear('lm_head', 1000, 64);
  return tinyTree(rows, { LlamaAttention: ['LlamaAttention', 'Module'] }, weights);
}

/** Weight args for a scheme (only the fields matching reads). */
export function weightArgs(strategy: QuantizationArgs['strategy'], groupSize: number | null = null): QuantizationArgs {
  return {
    num_bits: 4,
    type: strategy === 'tensor_group' ? 'float' : 'int',
    symmetric: true,
    group_size: groupSize,
    strategy,
    block_structure: null,
    dynamic: false,
    actorder: null,
    scale_dtype: null,
    zp_dtype: null,
    observer: null,
    observer_kwargs: {},
  };
}

/** A config group from target strings. */
export function group(name: string, targets: string[], weights: QuantizationArgs | null = null, inputs: QuantizationArgs | null = null): SchemeGroup {
  const scheme: QuantizationScheme = { targets, weights, input_activations: inputs, output_activations: null, format: null };
  return { name, targets: compilePatterns(targets.map((t) => patternRef(t))).value, scheme };
}

/** Compiled patterns from strings. */
export function patterns(texts: string[]) {
  return compilePatterns(texts.map((t) => patternRef(t))).value;
}
