/**
 * The qwen3_moe decoder layer: qwen3 attention (per-head q/k norms), then a
 * sparse MoE block (softmax top-k router, `norm_topk_prob`) on the layers
 * transformers makes sparse (`mlp_only_layers`, `decoder_sparse_step`), a
 * dense MLP on the others. Sparse layers also return `routed [E]`.
 */
import type { DecoderConfig } from './decoder-config.js';
import { decoderLayer, gatedMlp, type LayerOptions } from './llama-layer.js';
import { allExperts, combineExperts, flatten, readExperts, routedCountOutput, softmaxTopK, unflatten } from './moe.js';
import { linear } from './ops.js';
import type { WeightReader } from './weights.js';

/** Whether layer `layer` of a qwen3_moe / qwen2_moe config is sparse. */
export function qwenSparseLayer(raw: Readonly<Record<string, unknown>>, layer: number): boolean {
  const only = Array.isArray(raw.mlp_only_layers) ? (raw.mlp_only_layers as number[]) : [];
  const step = typeof raw.decoder_sparse_step === 'number' ? raw.decoder_sparse_step : 1;
  return !only.includes(layer) && expertCount(raw) > 0 && (layer + 1) % step === 0;
}

/** `num_experts` (or its alias `num_local_experts`). */
export function expertCount(raw: Readonly<Record<string, unknown>>): number {
  const n = raw.num_experts ?? raw.num_local_experts ?? raw.n_routed_experts;
  return typeof n === 'number' ? n : 0;
}

/** Builds qwen3_moe layer `layer`. */
export function qwen3MoeLayer(w: WeightReader, cfg: DecoderConfig, layer: number, raw: Readonly<Record<string, unknown>>, options: LayerOptions = {}): Promise<Uint8Array> {
  if (!qwenSparseLayer(raw, layer)) return decoderLayer(w, cfg, layer, (g, p, h) => gatedMlp(g, w, `${p}.mlp`, h, false), undefined, options);
  const experts = expertCount(raw);
  const k = Number(raw.num_experts_per_tok ?? 2);
  const inter = Number(raw.moe_intermediate_size);
  return decoderLayer(
    w,
    cfg,
    layer,
    async (g, p, h) => {
    const m = `${p}.mlp`;
    const x = flatten(g, h, cfg.hidden);
    const routing = softmaxTopK(g, linear(g, x, await w.linear(`${m}.gate`)), k, raw.norm_topk_prob === true);
      const out = combineExperts(g, allExperts(g, x, await readExperts(w, m, experts, cfg.hidden, inter), `${m}.experts`, routing), routing.weights);
      routedCountOutput(g, routing.mask, experts);
      return unflatten(g, out, h);
    },
    undefined,
    options,
  );
}
