/**
 * Matching micro-benchmark: ten realistic patterns against a Kimi-K2-sized
 * tree after expert unpacking (61 layers, 384 experts × 3 Linear each).
 */
import { TreeBuilder, type ModuleTree } from '../src/model/module-tree.js';
import { assignSchemes } from '../src/match/match.js';
import { compilePatterns, patternRef } from '../src/match/pattern.js';
import { runMatchLints } from '../src/match/lints/index.js';
import type { QuantizationScheme } from '../src/ir/types.js';

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

/** A DeepSeek-V3-shaped tree with `layers` decoder layers, `experts` routed experts unpacked to Linear. */
export function kimiK2Tree(layers = 61, experts = 384): ModuleTree {
  const b = new TreeBuilder();
  b.defineClass('DeepseekV3ForCausalLM', ['DeepseekV3PreTrainedModel', 'PreTrainedModel']);
  b.defineClass('Linear');
  b.defineClass('Embedding');
  b.defineClass('ModuleList');
  b.defineClass('LinearExperts2D', ['ModuleList']);
  const root = b.add('', 'DeepseekV3ForCausalLM', -1);
  const model = b.child(root, 'model', 'DeepseekV3Model');
  b.param(b.child(model, 'embed_tokens', 'Embedding'), 'weight', [163840, 7168], 'bfloat16');
  const list = b.child(model, 'layers', 'ModuleList');
  const linear = (parent: number, name: string, out: number, inp: number) => b.param(b.child(parent, name, 'Linear'), 'weight', [out, inp], 'bfloat16');
  for (let l = 0; l < layers; l++) {
    const layer = b.child(list, String(l), 'DeepseekV3DecoderLayer');
    const attn = b.child(layer, 'self_attn', 'DeepseekV3Attention');
    linear(attn, 'q_a_proj', 1536, 7168);
    b.child(attn, 'q_a_layernorm', 'DeepseekV3RMSNorm');
    linear(attn, 'q_b_proj', 64 * 192, 1536);
    linear(attn, 'kv_a_proj_with_mqa', 576, 7168);
    b.child(attn, 'kv_a_layernorm', 'DeepseekV3RMSNorm');
    linear(attn, 'kv_b_proj', 64 * 256, 512);
    linear(attn, 'o_proj', 7168, 64 * 128);
    if (l === 0) {
      const mlp = b.child(layer, 'mlp', 'DeepseekV3MLP');
      linear(mlp, 'gate_proj', 18432, 7168);
      linear(mlp, 'up_proj', 18432, 7168);
      linear(mlp, 'down_proj', 7168, 18432);
      b.child(mlp, 'act_fn', 'SiLUActivation');
    } else {
      const moe = b.child(layer, 'mlp', 'DeepseekV3MoE');
      const ex = b.child(moe, 'experts', 'LinearExperts2D');
      for (let e = 0; e < experts; e++) {
        const mlp = b.child(ex, String(e), 'ExpertMLPWithGate');
        linear(mlp, 'gate_proj', 2048, 7168);
        linear(mlp, 'up_proj', 2048, 7168);
        linear(mlp, 'down_proj', 7168, 2048);
      }
      b.child(moe, 'gate', 'DeepseekV3TopkRouter');
      const shared = b.child(moe, 'shared_experts', 'DeepseekV3MLP');
      linear(shared, 'gate_proj', 2048, 7168);
      linear(shared, 'up_proj', 2048, 7168);
      linear(shared, 'down_proj', 7168, 2048);
    }
    b.child(layer, 'input_layernorm', 'DeepseekV3RMSNorm');
    b.child(layer, 'post_attention_layernorm', 'DeepseekV3RMSNorm');
  }
  b.child(model, 'norm', 'DeepseekV3RMSNorm');
  b.child(model, 'rotary_emb', 'DeepseekV3RotaryEmbedding');
  b.param(b.child(root, 'lm_head', 'Linear'), 'weight', [163840, 7168], 'bfloat16');
  return b.build('kimi_k2', { kind: 'rewrite', description: 'synthetic Kimi-K2 tree, experts unpacked' });
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
