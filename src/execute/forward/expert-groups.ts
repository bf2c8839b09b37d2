/**
 * Routed experts with an architecture's own expert math (gpt-oss's clamped
 * SwiGLU with biases, Llama 4's input-scaled experts): inside the layer graph
 * when their float32 weights fit `placement.groupBytes`, else as separate
 * expert-group graphs run after it, exactly as {@link routedExperts} places
 * SiLU-gated experts.
 */
import { GraphBuilder, OnnxType } from '../onnx/graph-builder.js';
import { enableObservers } from './observe.js';
import { inheritPrecision } from './precision.js';
import type { ExpertPlacement, Routing } from './moe.js';

/**
 * Builds the block output `[N, H]` of experts `[start, start + count)` on
 * graph `g` for tokens `x [N, H]` and their columns of the routing matrices.
 */
export type ExpertRange = (g: GraphBuilder, x: string, routing: Routing, start: number, count: number) => Promise<string>;

/**
 * The routed output `[N, H]` of `experts` experts of `bytesPerExpert` float32
 * weight bytes each, built by `range` here or in expert-group graphs
 * recorded in `placement` (then zero here, with `moe_in` / `moe_weights` /
 * `moe_mask` declared as outputs for the executor).
 */
export async function placedExperts(g: GraphBuilder, x: string, routing: Routing, experts: number, hidden: number, bytesPerExpert: number, placement: ExpertPlacement, range: ExpertRange): Promise<string> {
  if (experts * bytesPerExpert <= placement.groupBytes) return range(g, x, routing, 0, experts);
  g.output(x, 'moe_in', OnnxType.float, ['tokens', hidden]);
  g.output(routing.weights, 'moe_weights', OnnxType.float, ['tokens', experts]);
  g.output(routing.mask, 'moe_mask', OnnxType.float, ['tokens', experts]);
  placement.groups = {
    experts,
    groupSize: Math.max(1, Math.floor(placement.groupBytes / bytesPerExpert)),
    build: async (start, count) => {
      const gg = new GraphBuilder();
      if (placement.observe) enableObservers(gg, placement.observe);
      inheritPrecision(gg, g);
      const xin = gg.input('moe_in', OnnxType.float, ['tokens', hidden]);
      const r: Routing = { weights: gg.input('moe_weights', OnnxType.float, ['tokens', count]), mask: gg.input('moe_mask', OnnxType.float, ['tokens', count]), ...(routing.k === undefined ? {} : { k: Math.min(routing.k, count) }) };
      gg.output(await range(gg, xin, r, start, count), 'partial', OnnxType.float, ['tokens', hidden]);
      // The checkpoint's own weights are read by onnxruntime from its files (external data).
      return gg.model(`experts_${start}`);
    },
  };
  return g.op('Mul', [x, g.f32(0)]);
}
