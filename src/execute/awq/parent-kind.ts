/**
 * Which parent modules AWQ's grid search can evaluate in apply: a single
 * Linear (`v_proj → o_proj`, `up_proj → down_proj`, an expert's
 * `down_proj`), llama-style self-attention (`input_layernorm → q/k/v_proj`;
 * gpt-oss's with its sinks, not gated or Llama 4 attention), the gated MLP
 * (`post_attention_layernorm → gate/up_proj`, under `mlp` or `feed_forward`) and an MoE
 * block whose experts' gate/up (with the router, the shared experts' gate/up
 * where the mappings name them) are balanced together, and MLA attention
 * (`input_layernorm → q_a_proj/q_proj, kv_a_proj_with_mqa`). Decided from the names and the parent's class, at
 * plan time, so that an unsupported parent stops apply before any work.
 */
import type { AwqMapping } from '../../match/awq-mappings.js';
import type { ParentKind } from './search-graph.js';

/**
 * MoE block classes whose forward the search graph computes, by router:
 * softmax top-k (Qwen3-MoE, Qwen3-VL-MoE's text model, OLMoE, Mixtral — always renormalized — and
 * Qwen2-MoE and Qwen3-Next with their sigmoid-gated shared expert), sigmoid scores with
 * `e_score_correction_bias` and group-limited top-k plus shared experts
 * (GLM-4.5's, DeepSeek-V3's, GLM-4.7-Flash's), Llama 4's sigmoid of the top-k
 * logits scaling each expert's input, GraniteMoE's top-k logits
 * softmaxed among themselves (gpt-oss's too, its router with a bias, its
 * experts' clamped SwiGLU with biases), PhiMoE's sparsemixer.
 */
export const SEARCHABLE_MOE_BLOCKS: ReadonlyMap<string, MoeRouterFamily> = new Map([
  ['Qwen3MoeSparseMoeBlock', 'softmax'],
  ['Qwen3VLMoeTextSparseMoeBlock', 'softmax'],
  ['OlmoeSparseMoeBlock', 'softmax'],
  ['MixtralSparseMoeBlock', 'softmax'],
  ['Qwen2MoeSparseMoeBlock', 'softmax'],
  ['Glm4MoeMoE', 'sigmoid'],
  ['DeepseekV3MoE', 'sigmoid'],
  ['Glm4MoeLiteMoE', 'sigmoid'],
  ['GraniteMoeMoE', 'topk-softmax'],
  ['PhimoeSparseMoeBlock', 'sparsemixer'],
  ['GptOssMLP', 'topk-softmax'],
  ['Qwen3NextSparseMoeBlock', 'softmax'],
  ['Llama4TextMoe', 'input-sigmoid'],
]);

/**
 * Self-attention classes named `self_attn` with q/k/v_proj that the search
 * graph does not compute: gated attention (q_proj also yields an output
 * gate: Qwen3-Next, Qwen3.5) and Llama 4's (L2 q/k norms, temperature
 * tuning, chunked and NoPE layers).
 */
const UNSEARCHABLE_ATTENTION: ReadonlySet<string> = new Set(['Qwen3NextAttention', 'Qwen3_5Attention', 'Qwen3_5MoeAttention', 'Llama4TextAttention']);

/** How a searchable MoE block routes (see SEARCHABLE_MOE_BLOCKS). */
export type MoeRouterFamily = 'softmax' | 'sigmoid' | 'topk-softmax' | 'sparsemixer' | 'input-sigmoid';

/** The router's module name inside an MoE block: `gate`, or `router` (GraniteMoE, PhiMoE, gpt-oss). */
export function routerName(parentClass: string | undefined): string {
  const family = SEARCHABLE_MOE_BLOCKS.get(parentClass ?? '');
  return family === 'topk-softmax' || family === 'sparsemixer' || family === 'input-sigmoid' ? 'router' : 'gate';
}

/** MLA attention classes the search graph computes (DeepSeek-V3's, GLM-4.7-Flash's; not the DSA indexer's). */
export const MLA_ATTENTION: ReadonlySet<string> = new Set(['DeepseekV3Attention', 'Glm4MoeLiteAttention']);

function tail(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/** How an MoE parent's balance layers split: the router (if balanced), each expert's gate and up, the shared expert's gate and up (if balanced); indices into the balance list. */
export interface MoeBalance {
  readonly router: number | null;
  readonly experts: ReadonlyMap<number, { gate: number; up: number }>;
  readonly shared: { gate: number; up: number } | null;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The balance layers of an MoE parent mapping by role; null when they are not router, experts' gate/up and shared experts' gate/up. */
export function moeBalance(m: AwqMapping, routerModule = 'gate'): MoeBalance | null {
  const experts = new Map<number, { gate: number; up: number }>();
  const shared = { gate: -1, up: -1 };
  let router: number | null = null;
  const expert = new RegExp(`^${escape(m.parent)}\\.experts\\.(\\d+)\\.(gate_proj|up_proj)$`);
  const sharedRe = new RegExp(`^${escape(m.parent)}\\.shared_experts?\\.(gate_proj|up_proj)$`);
  for (const [i, b] of m.balance.entries()) {
    if (b === `${m.parent}.${routerModule}`) {
      router = i;
      continue;
    }
    const sh = sharedRe.exec(b);
    if (sh) {
      if (sh[1] === 'gate_proj') shared.gate = i;
      else shared.up = i;
      continue;
    }
    const e = expert.exec(b);
    if (!e) return null;
    const entry = experts.get(Number(e[1])) ?? { gate: -1, up: -1 };
    if (e[2] === 'gate_proj') entry.gate = i;
    else entry.up = i;
    experts.set(Number(e[1]), entry);
  }
  if (experts.size === 0 || ![...experts.values()].every((e) => e.gate >= 0 && e.up >= 0)) return null;
  if ((shared.gate >= 0) !== (shared.up >= 0)) return null;
  return { router, experts, shared: shared.gate >= 0 ? shared : null };
}

/** The parent kind of mapping `m` (its parent module's class given), or null when the search graph has none for it. */
export function awqParentKind(m: AwqMapping, parentClass?: string): ParentKind | null {
  const tails = m.balance.map(tail).join(',');
  if (m.balance.length === 1 && m.parent === m.balance[0]) return 'linear';
  if (m.parent.endsWith('.self_attn') && tails === 'q_proj,k_proj,v_proj') return UNSEARCHABLE_ATTENTION.has(parentClass ?? '') ? null : 'attention';
  if ((m.parent.endsWith('.mlp') || m.parent.endsWith('.feed_forward')) && tails === 'gate_proj,up_proj') return 'mlp';
  if (parentClass !== undefined && MLA_ATTENTION.has(parentClass) && (tails === 'q_a_proj,kv_a_proj_with_mqa' || tails === 'q_proj,kv_a_proj_with_mqa')) return 'mla';
  if (parentClass !== undefined && SEARCHABLE_MOE_BLOCKS.has(parentClass) && moeBalance(m, routerName(parentClass))) return 'moe';
  return null;
}
