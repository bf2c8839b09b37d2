/**
 * Which parent modules AWQ's grid search can evaluate in apply: a single
 * Linear (`v_proj → o_proj`, `up_proj → down_proj`), llama-style
 * self-attention (`input_layernorm → q/k/v_proj`) and the gated MLP
 * (`post_attention_layernorm → gate/up_proj`). Decided from the names, at
 * plan time, so that an unsupported parent stops apply before any work.
 */
import type { AwqMapping } from '../../match/awq-mappings.js';
import type { ParentKind } from './search-graph.js';

function tail(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/** The parent kind of mapping `m`, or null when the search graph has none for it. */
export function awqParentKind(m: AwqMapping): ParentKind | null {
  const tails = m.balance.map(tail).join(',');
  if (m.balance.length === 1 && m.parent === m.balance[0]) return 'linear';
  if (m.parent.endsWith('.self_attn') && tails === 'q_proj,k_proj,v_proj') return 'attention';
  if (m.parent.endsWith('.mlp') && tails === 'gate_proj,up_proj') return 'mlp';
  return null;
}
