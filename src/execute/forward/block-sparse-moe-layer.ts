/**
 * Decoder layers whose MoE block transformers (or its checkpoints) call
 * `block_sparse_moe`, with routers of their own:
 * - granitemoe: `block_sparse_moe.router` picks the top-k router logits and
 *   softmaxes over those k only; experts stored fused as `input_linear`
 *   (gate half first) and `output_linear`; every layer sparse.
 * - phimoe: `mlp.router` (stored `block_sparse_moe.gate`) routes with
 *   sparsemixer as transformers 5.17 runs it at inference; experts stored
 *   per expert as `w1`/`w3`/`w2`.
 * Both return `routed [E]` like the other MoE layers.
 */
import type { GraphBuilder } from '../onnx/graph-builder.js';
import type { DecoderConfig } from './decoder-config.js';
import { decoderLayer, type LayerOptions, type LayerProgram } from './llama-layer.js';
import { EXPERT_GROUP_BYTES, flatten, routedCountOutput, routedExperts, scatterTopK, unflatten, type ExpertPlacement, type Routing } from './moe.js';
import { observeInput } from './observe.js';
import { linear } from './ops.js';
import { graphPrecision, lowOp, rounded, roundTo } from './precision.js';
import { expertCount } from './softmax-moe-layer.js';
import type { WeightReader } from './weights.js';

/**
 * GraniteMoE's router: top-k of the logits, then a softmax over those k
 * values (in float32, the weights cast back to the hidden states' dtype).
 */
export function topKSoftmax(g: GraphBuilder, logits: string, k: number): Routing {
  const [values, indices] = g.opMulti('TopK', [logits, g.i64([k])], 2, { axis: -1, largest: 1, sorted: 1 });
  return scatterTopK(g, logits, rounded(g, g.op('Softmax', [values!], { axis: -1 })), indices!, k);
}

/**
 * PhiMoE's sparsemixer at inference (two experts whatever `num_experts_per_tok`
 * says): the best logit's expert, weighted by the softmax over the logits
 * within `2·jitterEps` (relative to max(|logit|, best)) of the best; then the
 * same for the runner-up among the other logits. On bf16 logits every op
 * stays in bf16: the difference and the ratio rounded, the ratio compared
 * with `2·jitterEps` cast to bf16, the softmax (float32 inside) rounded.
 */
export function sparseMixer(g: GraphBuilder, logits: string, jitterEps: number): Routing {
  const negInf = g.f32(-Infinity);
  const low = graphPrecision(g);
  const threshold = low ? roundTo(low.dtype)(2 * jitterEps) : 2 * jitterEps;
  const choose = (scores: string): { weight: string; index: string } => {
    const best = g.op('ReduceMax', [scores, g.i64([-1])], { keepdims: 1 });
    const index = g.op('ArgMax', [scores], { axis: -1, keepdims: 1 });
    // Measured against the unmasked logits, as transformers does for both choices.
    const factor = g.op('Max', [g.op('Abs', [logits]), best]);
    const far = g.op('Greater', [lowOp(g, 'Div', [lowOp(g, 'Sub', [best, logits]), factor]), g.f32(threshold)]);
    const gates = rounded(g, g.op('Softmax', [g.op('Where', [far, negInf, scores])], { axis: -1 }));
    return { weight: g.op('GatherElements', [gates, index], { axis: -1 }), index };
  };
  const first = choose(logits);
  const rest = g.op('ScatterElements', [logits, first.index, g.op('Expand', [negInf, g.op('Shape', [first.index])])], { axis: -1 });
  const second = choose(rest);
  return scatterTopK(g, logits, g.op('Concat', [first.weight, second.weight], { axis: -1 }), g.op('Concat', [first.index, second.index], { axis: -1 }), 2);
}

/** Builds layer `layer` of a granitemoe or phimoe model. */
export async function blockSparseMoeLayer(w: WeightReader, cfg: DecoderConfig, layer: number, raw: Readonly<Record<string, unknown>>, options: LayerOptions = {}): Promise<LayerProgram> {
  const placement: ExpertPlacement = { groupBytes: options.expertGroupBytes ?? EXPERT_GROUP_BYTES, observe: options.observe };
  const experts = expertCount(raw);
  const inter = Number(raw.intermediate_size);
  const granite = cfg.modelType === 'granitemoe';
  const graph = await decoderLayer(
    w,
    cfg,
    layer,
    async (g, p, h) => {
      const x = flatten(g, h, cfg.hidden);
      let routing: Routing;
      let m: string;
      let observedAs: string;
      if (granite) {
        m = `${p}.block_sparse_moe`;
        observedAs = `${m}.experts`;
        // Stored as `router.layer` (transformers 5 renames it `router` on load).
        const router = w.has(`${m}.router.layer.weight`) ? `${m}.router.layer` : `${m}.router`;
        routing = topKSoftmax(g, linear(g, x, await w.linearWeight(router)), Number(raw.num_experts_per_tok ?? 2));
      } else {
        // transformers 5 saves phimoe in its original layout (block_sparse_moe, gate, experts.<e>.w1/w3/w2).
        const original = w.has(`${p}.block_sparse_moe.gate.weight`);
        m = original ? `${p}.block_sparse_moe` : `${p}.mlp`;
        observedAs = `${p}.mlp.experts`;
        observeInput(g, [`${p}.mlp.router`], x);
        const jitter = typeof raw.router_jitter_noise === 'number' ? raw.router_jitter_noise : 0.01;
        routing = sparseMixer(g, linear(g, x, await w.linearWeight(original ? `${m}.gate` : `${m}.router`)), jitter);
      }
      const out = await routedExperts(g, w, m, x, routing, experts, cfg.hidden, inter, placement, observedAs);
      routedCountOutput(g, routing.mask, experts, `routed${options.into?.suffix ?? ''}`);
      return unflatten(g, out, h);
    },
    undefined,
    options,
  );
  return { graph, expertGroups: placement.groups };
}
