/**
 * Decoder layers with a softmax top-k router: qwen3_moe (per-head q/k norms,
 * `norm_topk_prob`), qwen2_moe (q/k/v biases, plus a shared expert scaled
 * by `sigmoid(shared_expert_gate)`), mixtral (top-k always renormalized),
 * olmoe (the qwen3_moe block; its q/k norms span whole projections).
 * Qwen models are sparse on the layers transformers makes sparse
 * (`mlp_only_layers`, `decoder_sparse_step`) and dense elsewhere; mixtral is
 * sparse everywhere. Sparse layers also return `routed [E]`.
 */
import type { DecoderConfig } from './decoder-config.js';
import { decoderLayer, type LayerOptions, type LayerProgram } from './llama-layer.js';
import { gatedMlp } from './split-mlp.js';
import { EXPERT_GROUP_BYTES, flatten, joinShared, routedCountOutput, routedExperts, softmaxTopK, unflatten, type ExpertPlacement } from './moe.js';
import { observeInput } from './observe.js';
import { denseMlp } from './split-mlp.js';
import { linear } from './ops.js';
import { lowOp } from './precision.js';
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

/** Builds layer `layer` of a qwen3_moe, qwen2_moe, mixtral or olmoe model. */
export async function softmaxMoeLayer(w: WeightReader, cfg: DecoderConfig, layer: number, raw: Readonly<Record<string, unknown>>, options: LayerOptions = {}): Promise<LayerProgram> {
  const mixtral = cfg.modelType === 'mixtral';
  const placement: ExpertPlacement = { groupBytes: options.expertGroupBytes ?? EXPERT_GROUP_BYTES, observe: options.observe };
  if (!mixtral && !qwenSparseLayer(raw, layer)) {
    const graph = await decoderLayer(w, cfg, layer, (g, p, h) => denseMlp(g, w, cfg, `${p}.mlp`, h, placement), undefined, options);
    return { graph, expertGroups: placement.groups };
  }
  const experts = expertCount(raw);
  const k = Number(raw.num_experts_per_tok ?? 2);
  const inter = Number(raw.moe_intermediate_size ?? raw.intermediate_size);
  const graph = await decoderLayer(
    w,
    cfg,
    layer,
    async (g, p, h) => {
      // transformers 5 saves mixtral in its original layout (block_sparse_moe, experts.<e>.w1/w3/w2).
      const m = w.has(`${p}.block_sparse_moe.gate.weight`) ? `${p}.block_sparse_moe` : `${p}.mlp`;
      const x = flatten(g, h, cfg.hidden);
      const routing = softmaxTopK(g, linear(g, x, await w.linearWeight(`${m}.gate`)), k, mixtral || raw.norm_topk_prob === true, mixtral);
      let out = await routedExperts(g, w, m, x, routing, experts, cfg.hidden, inter, placement);
      // In a graph of several layers each layer's counts come out under its own name (the executor gives them back as `routed`).
      routedCountOutput(g, routing.mask, experts, `routed${options.into?.suffix ?? ''}`);
      if (w.hasLinear(`${m}.shared_expert.gate_proj`)) {
        const shared = await gatedMlp(g, w, `${m}.shared_expert`, x, false);
        observeInput(g, [`${m}.shared_expert_gate`], x);
        const gate = lowOp(g, 'Sigmoid', [linear(g, x, await w.linearWeight(`${m}.shared_expert_gate`))]);
        const gated = lowOp(g, 'Mul', [gate, shared]);
        out = joinShared(g, placement, out, gated, ['tokens', cfg.hidden]);
      }
      return unflatten(g, out, h);
    },
    undefined,
    options,
  );
  return { graph, expertGroups: placement.groups };
}
