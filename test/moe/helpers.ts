/** Shared inputs for the MoE tests: oracle trees, settings, and small hand-built trees. */
import { existsSync, readdirSync } from 'node:fs';
import { treeFromOracleJson, type OracleTreeJson } from '../../src/model/from-tree-json.js';
import { TreeBuilder, type ModuleTree } from '../../src/model/module-tree.js';
import type { MoeRewriteDecl, MoeSettings } from '../../src/ir/types.js';
import { FIXTURES, readJson } from '../model/fixtures.js';

/** The four oracle models. */
export const ORACLE_MODELS = [
  'zai-org__GLM-4.7-Flash',
  'Qwen__Qwen3-30B-A3B',
  'mistralai__Mixtral-8x7B-v0.1',
  'meta-llama__Llama-3.1-8B',
] as const;

/** What llm-compressor main produced for one oracle model. */
export interface Linearized {
  readonly replaced: [string, string, string][];
  readonly modules: [string, string][];
}

/** The oracle tree of `model`, as transformers builds it. */
export function oracleTree(model: string): ModuleTree {
  const dir = `${FIXTURES}oracle/${model}/`;
  const path = existsSync(`${dir}tree.json.gz`) ? `${dir}tree.json.gz` : `${dir}tree.json`;
  return treeFromOracleJson(readJson(path) as OracleTreeJson);
}

/** llm-compressor main's linearization of `model`. */
export function oracleLinearized(model: string): Linearized {
  return readJson(`${FIXTURES}oracle/${model}/linearized.json.gz`) as Linearized;
}

/** llm-compressor 0.11's wrapped blocks and its log, per oracle model. */
export function oracleLegacy(model: string): { legacy_replaced: [string, string, string][]; legacy_found_log: string[] } {
  const all = readJson(`${FIXTURES}moe/legacy-replaced.json`) as Record<string, { legacy_replaced: [string, string, string][]; legacy_found_log: string[] }>;
  return all[model]!;
}

/** MoE settings with defaults, as the IR builder produces them. */
export function settings(overrides: Partial<MoeSettings> = {}): MoeSettings {
  return { calibrateAllExperts: true, onUnsupported: 'error', minExpertTokens: 1, onLowCoverage: 'error', rewrites: [], origin: undefined, ...overrides };
}

/** A declared rewrite without a source span. */
export function decl(fields: Omit<MoeRewriteDecl, 'origin'>): MoeRewriteDecl {
  return { origin: undefined, ...fields };
}

/** Shape of the toy MoE models built by `toyMoe`. */
export interface ToyMoe {
  readonly blockClass: string;
  readonly layers: number;
  readonly experts: number;
  readonly hidden: number;
  readonly intermediate: number;
  /** `fused`: 3-D `gate_up_proj`/`down_proj`; `module_list`: a ModuleList of Linear MLPs. */
  readonly layout: 'fused' | 'module_list';
  /** Local name of the router (a Linear with `out_features == experts`). */
  readonly router: string;
}

/**
 * A small decoder with one MoE block per layer whose classes quantc does not
 * know (`model.layers.<l>.mlp` of class `blockClass`).
 */
export function toyMoe(t: ToyMoe): ModuleTree {
  const b = new TreeBuilder();
  b.defineClass('ModuleList');
  b.defineClass('Linear');
  const root = b.add('', 'AcmeForCausalLM', -1);
  const model = b.child(root, 'model', 'AcmeModel');
  const layers = b.child(model, 'layers', 'ModuleList');
  for (let l = 0; l < t.layers; l++) {
    const layer = b.child(layers, String(l), 'AcmeDecoderLayer');
    const attn = b.child(layer, 'self_attn', 'AcmeAttention');
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) b.param(b.child(attn, p, 'Linear'), 'weight', [t.hidden, t.hidden], 'bfloat16');
    const mlp = b.child(layer, 'mlp', t.blockClass);
    const router = b.child(mlp, t.router, 'Linear');
    b.param(router, 'weight', [t.experts, t.hidden], 'bfloat16');
    if (t.layout === 'fused') {
      const experts = b.child(mlp, 'experts', 'AcmeExperts');
      b.param(experts, 'gate_up_proj', [t.experts, 2 * t.intermediate, t.hidden], 'bfloat16');
      b.param(experts, 'down_proj', [t.experts, t.hidden, t.intermediate], 'bfloat16');
      b.child(experts, 'act_fn', 'SiLUActivation');
    } else {
      const experts = b.child(mlp, 'experts', 'ModuleList');
      for (let e = 0; e < t.experts; e++) {
        const expert = b.child(experts, String(e), 'AcmeMLP');
        b.param(b.child(expert, 'gate_proj', 'Linear'), 'weight', [t.intermediate, t.hidden], 'bfloat16');
        b.param(b.child(expert, 'up_proj', 'Linear'), 'weight', [t.intermediate, t.hidden], 'bfloat16');
        b.param(b.child(expert, 'down_proj', 'Linear'), 'weight', [t.hidden, t.intermediate], 'bfloat16');
        b.child(expert, 'act_fn', 'SiLUActivation');
      }
    }
  }
  b.param(b.child(root, 'lm_head', 'Linear'), 'weight', [1000, t.hidden], 'bfloat16');
  return b.build('acme', { kind: 'module-tree-json', description: 'toy tree' });
}

/**
 * A Kimi-K2-sized DeepSeek-V3 tree (61 layers, the first dense, 384 routed
 * experts of 2048 × 7168 per MoE block, one shared expert), built directly.
 */
export function kimiK2Tree(): ModuleTree {
  const hidden = 7168;
  const experts = 384;
  const inter = 2048;
  const b = new TreeBuilder();
  b.defineClass('ModuleList');
  b.defineClass('Linear');
  const root = b.add('', 'DeepseekV3ForCausalLM', -1);
  const model = b.child(root, 'model', 'DeepseekV3Model');
  b.param(b.child(model, 'embed_tokens', 'Embedding'), 'weight', [163840, hidden], 'bfloat16');
  const layers = b.child(model, 'layers', 'ModuleList');
  const linear = (parent: number, name: string, out: number, inp: number): void => {
    b.param(b.child(parent, name, 'Linear'), 'weight', [out, inp], 'bfloat16');
  };
  const mlp = (parent: number, name: string, cls: string, size: number): void => {
    const m = b.child(parent, name, cls);
    linear(m, 'gate_proj', size, hidden);
    linear(m, 'up_proj', size, hidden);
    linear(m, 'down_proj', hidden, size);
    b.child(m, 'act_fn', 'SiLUActivation');
  };
  for (let l = 0; l < 61; l++) {
    const layer = b.child(layers, String(l), 'DeepseekV3DecoderLayer');
    const attn = b.child(layer, 'self_attn', 'DeepseekV3Attention');
    linear(attn, 'q_a_proj', 1536, hidden);
    b.param(b.child(attn, 'q_a_layernorm', 'DeepseekV3RMSNorm'), 'weight', [1536], 'bfloat16');
    linear(attn, 'q_b_proj', 64 * 192, 1536);
    linear(attn, 'kv_a_proj_with_mqa', 576, hidden);
    b.param(b.child(attn, 'kv_a_layernorm', 'DeepseekV3RMSNorm'), 'weight', [512], 'bfloat16');
    linear(attn, 'kv_b_proj', 64 * 256, 512);
    linear(attn, 'o_proj', hidden, 64 * 128);
    if (l === 0) {
      mlp(layer, 'mlp', 'DeepseekV3MLP', 18432);
    } else {
      const block = b.child(layer, 'mlp', 'DeepseekV3MoE');
      const ex = b.child(block, 'experts', 'DeepseekV3Experts');
      b.param(ex, 'gate_up_proj', [experts, 2 * inter, hidden], 'bfloat16');
      b.param(ex, 'down_proj', [experts, hidden, inter], 'bfloat16');
      b.child(ex, 'act_fn', 'SiLUActivation');
      b.param(b.child(block, 'gate', 'DeepseekV3TopkRouter'), 'weight', [experts, hidden], 'bfloat16');
      mlp(block, 'shared_experts', 'DeepseekV3MLP', inter);
    }
    b.param(b.child(layer, 'input_layernorm', 'DeepseekV3RMSNorm'), 'weight', [hidden], 'bfloat16');
    b.param(b.child(layer, 'post_attention_layernorm', 'DeepseekV3RMSNorm'), 'weight', [hidden], 'bfloat16');
  }
  b.param(b.child(model, 'norm', 'DeepseekV3RMSNorm'), 'weight', [hidden], 'bfloat16');
  b.child(model, 'rotary_emb', 'DeepseekV3RotaryEmbedding');
  linear(root, 'lm_head', 163840, hidden);
  return b.build('deepseek_v3', { kind: 'config', description: 'Kimi-K2-sized DeepSeek-V3 tree' });
}

/** One architecture tree dumped from transformers: `test/fixtures/trees/<model_type>/<variant>.{config,tree}.json[.gz]`. */
export interface ArchitectureTree {
  readonly id: string;
  readonly config: Record<string, unknown>;
  readonly tree: ModuleTree;
}

/** Every architecture tree that has both its config and its tree dump. */
export function architectureTrees(): ArchitectureTree[] {
  const root = `${FIXTURES}trees/`;
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) =>
      readdirSync(`${root}${d.name}`)
        .filter((f) => f.endsWith('.config.json'))
        .flatMap((f) => {
          const stem = `${root}${d.name}/${f.slice(0, -'.config.json'.length)}`;
          const treePath = [`${stem}.tree.json.gz`, `${stem}.tree.json`].find((p) => existsSync(p));
          if (treePath === undefined) return [];
          return [
            {
              id: `${d.name}/${f.slice(0, -'.config.json'.length)}`,
              config: readJson(`${stem}.config.json`) as Record<string, unknown>,
              tree: treeFromOracleJson(readJson(treePath) as OracleTreeJson),
            },
          ];
        }),
    );
}
