/**
 * What the Qwen MoE family shares: which layers are sparse
 * (`mlp_only_layers`, `decoder_sparse_step`, `num_experts > 0`), and the
 * sparse block (router, fused experts, optional gated shared expert).
 */
import { DEFAULT_EXPERTS_LAYOUT } from '../moe-facts.js';
import type { ModelBuilder } from './blocks.js';

/** transformers' rule in `Qwen2MoeDecoderLayer` / `Qwen3MoeDecoderLayer` / `Qwen3NextDecoderLayer`. */
export function isQwenSparseLayer(m: ModelBuilder, index: number): boolean {
  const only = m.cfg.intList('mlp_only_layers') ?? [];
  const experts = m.cfg.int('num_experts');
  const step = Math.max(1, m.cfg.optInt('decoder_sparse_step') ?? 1);
  return !only.includes(index) && experts > 0 && (index + 1) % step === 0;
}

/** Options of a Qwen sparse MoE block. */
export interface QwenMoeOptions {
  readonly prefix: string;
  readonly blockCls: string;
  /** Router before experts (Qwen2-MoE, Qwen3-Next) or after (Qwen3-MoE). */
  readonly routerFirst: boolean;
  /** Gated shared expert (Qwen2-MoE, Qwen3-Next). */
  readonly shared: boolean;
}

/** Adds `mlp` as a sparse block, or as the dense `<prefix>MLP` of `intermediate_size`. */
export function qwenMlp(m: ModelBuilder, layer: number, index: number, o: QwenMoeOptions): void {
  if (!isQwenSparseLayer(m, index)) {
    m.mlp(layer, 'mlp', m.cfg.int('intermediate_size'), { cls: `${o.prefix}MLP` });
    return;
  }
  const e = m.cfg.int('num_experts');
  const inter = m.cfg.int('moe_intermediate_size');
  const block = m.module(layer, 'mlp', o.blockCls);
  const routerCls = `${o.prefix}TopKRouter`;
  const expertsOpts = { cls: `${o.prefix}Experts`, numExperts: e, intermediate: inter, layout: DEFAULT_EXPERTS_LAYOUT, act: true };
  let router: number;
  let experts: number;
  if (o.routerFirst) {
    router = m.router(block, 'gate', routerCls, e);
    experts = m.experts(block, 'experts', expertsOpts);
  } else {
    experts = m.experts(block, 'experts', expertsOpts);
    router = m.router(block, 'gate', routerCls, e);
  }
  let sharedExperts = -1;
  let sharedExpertGate = -1;
  if (o.shared) {
    sharedExperts = m.mlp(block, 'shared_expert', m.cfg.int('shared_expert_intermediate_size'), { cls: `${o.prefix}MLP` });
    sharedExpertGate = m.linear(block, 'shared_expert_gate', 1, m.hidden);
  }
  m.moeBlock({ block, experts, router, sharedExperts, sharedExpertGate, numExperts: e, intermediate: inter, layout: DEFAULT_EXPERTS_LAYOUT });
}
