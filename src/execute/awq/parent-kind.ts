/**
 * Which parent modules AWQ's grid search can evaluate in apply: a single
 * Linear (`v_proj → o_proj`, `up_proj → down_proj`, an expert's
 * `down_proj`), llama-style self-attention (`input_layernorm → q/k/v_proj`),
 * the gated MLP (`post_attention_layernorm → gate/up_proj`) and a softmax
 * top-k MoE block whose experts' gate/up (and router) are balanced together
 * (Qwen3-MoE). Decided from the names and the parent's class, at
 * plan time, so that an unsupported parent stops apply before any work.
 */
import type { AwqMapping } from '../../match/awq-mappings.js';
import type { ParentKind } from './search-graph.js';

/** MoE block classes whose routing the search graph computes (softmax top-k, no shared expert). */
export const SEARCHABLE_MOE_BLOCKS: ReadonlySet<string> = new Set(['Qwen3MoeSparseMoeBlock']);

function tail(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/** The experts of an MoE parent mapping: per expert index, its gate and up balance indices; null when the balance layers are not router + experts' gate/up. */
export function moeExperts(m: AwqMapping): Map<number, { gate: number; up: number }> | null {
  const experts = new Map<number, { gate: number; up: number }>();
  for (const [i, b] of m.balance.entries()) {
    if (b === `${m.parent}.gate`) continue;
    const e = new RegExp(`^${m.parent.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.experts\\.(\\d+)\\.(gate_proj|up_proj)$`).exec(b);
    if (!e) return null;
    const entry = experts.get(Number(e[1])) ?? { gate: -1, up: -1 };
    if (e[2] === 'gate_proj') entry.gate = i;
    else entry.up = i;
    experts.set(Number(e[1]), entry);
  }
  return experts.size > 0 && [...experts.values()].every((e) => e.gate >= 0 && e.up >= 0) ? experts : null;
}

/** The parent kind of mapping `m` (its parent module's class given), or null when the search graph has none for it. */
export function awqParentKind(m: AwqMapping, parentClass?: string): ParentKind | null {
  const tails = m.balance.map(tail).join(',');
  if (m.balance.length === 1 && m.parent === m.balance[0]) return 'linear';
  if (m.parent.endsWith('.self_attn') && tails === 'q_proj,k_proj,v_proj') return 'attention';
  if (m.parent.endsWith('.mlp') && tails === 'gate_proj,up_proj') return 'mlp';
  if (parentClass !== undefined && SEARCHABLE_MOE_BLOCKS.has(parentClass) && moeExperts(m)) return 'moe';
  return null;
}
