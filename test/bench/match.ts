/**
 * Matching micro-benchmark: ten realistic patterns against Kimi-K2 after
 * expert unpacking (61 layers, 384 experts × 3 Linear each).
 */
import { loadModel } from '../../src/model/load.js';
import type { ModuleTree } from '../../src/model/module-tree.js';
import { rewriteModel } from '../../src/moe/rewrite-model.js';
import { assignSchemes } from '../../src/match/match.js';
import { compilePatterns, patternRef } from '../../src/match/pattern.js';
import { runMatchLints } from '../../src/match/lints/index.js';
import type { QuantizationScheme } from '../../src/ir/types.js';

/** One timing result. */
export interface MatchBenchResult {
  readonly name: string;
  readonly modules: number;
  readonly patterns: number;
  readonly quantized: number;
  /** Median wall time of one full match (cold: fresh pattern caches each run). */
  readonly medianMs: number;
  /** Median wall time of the matching lints over the same tree and patterns. */
  readonly lintMedianMs: number;
}

/**
 * Kimi-K2 as llm-compressor quantizes it: the bundled config expanded by
 * `loadModel`, then the MoE rewrite that unpacks its fused experts
 * (93,383 modules).
 */
export function kimiK2Tree(): ModuleTree {
  const loaded = loadModel('moonshotai/Kimi-K2-Instruct').value;
  if (!loaded) throw new Error('the bundled Kimi-K2 config failed to load');
  return rewriteModel(loaded.tree, { calibrateAllExperts: true, onUnsupported: 'error', minExpertTokens: 1, onLowCoverage: 'error', rewrites: [], origin: undefined }).value.tree;
}

const TARGETS = ['Linear', 're:.*self_attn\\.(q_a|q_b|kv_a|kv_b|o)_proj.*', 're:.*experts\\.\\d+\\.down_proj$'];
const IGNORE = ['lm_head', 're:.*mlp.gate$', 're:model\\.layers\\.0\\..*', 're:.*shared_experts.*', 're:.*kv_a_proj_with_mqa$', 'DeepseekV3TopkRouter', 're:.*q_a_proj$'];

const SCHEME: QuantizationScheme = { targets: [], weights: null, input_activations: null, output_activations: null, format: null };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Times `assignSchemes` (and the lints) on the Kimi-K2-sized tree; each run builds fresh pattern caches. */
export function benchMatch(runs = 7): MatchBenchResult {
  const times: number[] = [];
  const lintTimes: number[] = [];
  let quantized = 0;
  let modules = 0;
  for (let r = 0; r < runs; r++) {
    const tree = kimiK2Tree();
    modules = tree.names.length;
    // Collect the tree builder's garbage now rather than inside the timing.
    (globalThis as { gc?: () => void }).gc?.();
    const t0 = performance.now();
    const targets = compilePatterns(TARGETS.map((t) => patternRef(t))).value;
    const ignore = compilePatterns(IGNORE.map((t) => patternRef(t))).value;
    const result = assignSchemes(tree, [{ name: 'group_0', targets, scheme: SCHEME }], ignore);
    const t1 = performance.now();
    runMatchLints(tree, [{ name: 'group_0', targets, scheme: SCHEME }], ignore);
    lintTimes.push(performance.now() - t1);
    times.push(t1 - t0);
    quantized = result.quantized.modules.length;
  }
  return {
    name: 'match: Kimi-K2 (61 layers × 384 experts unpacked), 10 patterns',
    modules,
    patterns: TARGETS.length + IGNORE.length,
    quantized,
    medianMs: median(times),
    lintMedianMs: median(lintTimes),
  };
}
