/**
 * The gpt-oss decoder layer as transformers 5.17 computes it (eager):
 * attention with biased q/k/v/o and one learned sink logit per head (a
 * column the softmax sees and the output drops), on a sliding window or full
 * causal mask per `layer_types`; then a router with bias (top-k of the
 * logits, softmax over the k) and experts with biases whose fused
 * `gate_up_proj [E, H, 2I]` interleaves gate and up columns, activated by
 * the clamped SwiGLU `(clamp(up, ±limit) + 1) · g · sigmoid(α g)` with
 * `g = min(gate, limit)`. Returns `routed [E]` like the other MoE layers.
 * Experts are read fused, MXFP4-packed (the published checkpoints) or per
 * expert (quantized checkpoints, replaced weights).
 */
import type { GraphBuilder } from '../onnx/graph-builder.js';
import type { DecoderConfig } from './decoder-config.js';
import { placedExperts } from './expert-groups.js';
import { decoderLayer, type LayerInputs, type LayerOptions, type LayerProgram } from './llama-layer.js';
import { combineExperts, EXPERT_GROUP_BYTES, flatten, inputMajorStack, routedCountOutput, scatterTopK, storedInputMajorExperts, unflatten, type ExpertPlacement, type Routing } from './moe.js';
import { observeChannels, observeExperts, observeInput } from './observe.js';
import { linear, rotary, splitHeads, weightConst } from './ops.js';
import { graphPrecision, lowOp, matmul, roundTo, rounded } from './precision.js';
import { expertCount } from './softmax-moe-layer.js';
import type { WeightReader } from './weights.js';
import { decodeMxfp4Rows, mxfp4Param } from '../mxfp4-experts.js';
import { inMemoryName } from '../weight-source.js';

/** `GptOssExperts.alpha` and `.limit` (constants of the module, not config keys). */
const ALPHA = 1.702;
const LIMIT = 7.0;

/** Experts `[start, start + count)` de-interleaved: gate/up `[E, H, I]` with biases `[E, I]`, down `[E, I, H]` with bias `[E, H]`. */
interface GptOssExperts {
  readonly gate: Float32Array;
  readonly up: Float32Array;
  readonly gateBias: Float32Array;
  readonly upBias: Float32Array;
  readonly down: Float32Array;
  readonly downBias: Float32Array;
}

/**
 * Reads experts of MoE module `m`: the fused tensors transformers stores, or
 * per-expert `experts.<e>.{gate,up,down}_proj` Linears as llm-compressor
 * writes them (`gate_proj` = the first half of the fused columns, `up_proj`
 * the second, still interleaved), with their biases.
 */
async function readGptOssExperts(w: WeightReader, m: string, start: number, count: number, hidden: number, inter: number): Promise<GptOssExperts> {
  const e2 = 2 * inter;
  // fused [count, H, 2I] (x @ W orientation) and its bias [count, 2I]; down [count, I, H] and bias [count, H].
  let fused: Float32Array;
  let fusedBias: Float32Array;
  let down: Float32Array;
  let downBias: Float32Array;
  const packedUp = mxfp4Param(w.index, `${m}.experts.gate_up_proj`);
  const packedDown = mxfp4Param(w.index, `${m}.experts.down_proj`);
  const replaced = (): boolean => {
    for (let e = start; e < start + count; e++) for (const p of ['gate_proj', 'up_proj', 'down_proj']) if (w.replacement(`${m}.experts.${e}.${p}`)) return true;
    return false;
  };
  if (packedUp && packedDown && !w.has(`${m}.experts.gate_up_proj`) && !replaced()) {
    // MXFP4-packed as published: stored [E, out, in], held transposed in memory ([E, in, out]).
    fused = new Float32Array(count * hidden * e2);
    down = new Float32Array(count * inter * hidden);
    for (let e = 0; e < count; e++) {
      const gu = await decodeMxfp4Rows(packedUp, start + e, 0, e2); // [2I, H]
      for (let r = 0; r < e2; r++) for (let h = 0; h < hidden; h++) fused[(e * hidden + h) * e2 + r] = gu[r * hidden + h]!;
      const dn = await decodeMxfp4Rows(packedDown, start + e, 0, hidden); // [H, I]
      for (let h = 0; h < hidden; h++) for (let i = 0; i < inter; i++) down[(e * inter + i) * hidden + h] = dn[h * inter + i]!;
    }
    fusedBias = await w.slice(`${m}.experts.gate_up_proj_bias`, start, count);
    downBias = await w.slice(`${m}.experts.down_proj_bias`, start, count);
  } else if (w.has(`${m}.experts.gate_up_proj`)) {
    fused = await w.slice(`${m}.experts.gate_up_proj`, start, count);
    fusedBias = await w.slice(`${m}.experts.gate_up_proj_bias`, start, count);
    down = await w.slice(`${m}.experts.down_proj`, start, count);
    downBias = await w.slice(`${m}.experts.down_proj_bias`, start, count);
  } else {
    fused = new Float32Array(count * hidden * e2);
    down = new Float32Array(count * inter * hidden);
    // Weights replaced per expert (a quantized or smoothed layer being propagated) keep the checkpoint's fused biases
    // but where a bias is replaced too (AWQ's smoothed up_proj).
    const fusedBiases = w.has(`${m}.experts.gate_up_proj_bias`);
    fusedBias = fusedBiases ? await w.slice(`${m}.experts.gate_up_proj_bias`, start, count) : new Float32Array(count * e2);
    downBias = fusedBiases ? await w.slice(`${m}.experts.down_proj_bias`, start, count) : new Float32Array(count * hidden);
    for (let e = 0; e < count; e++) {
      const p = `${m}.experts.${start + e}`;
      for (const [half, name] of [[0, 'gate_proj'], [1, 'up_proj']] as const) {
        const lin = (await w.linear(`${p}.${name}`)).data; // [I, H]
        for (let r = 0; r < inter; r++) for (let h = 0; h < hidden; h++) fused[(e * hidden + h) * e2 + half * inter + r] = lin[r * hidden + h]!;
        const b = await w.optionalVector(`${p}.${name}.bias`);
        if (b) fusedBias.set(b, e * e2 + half * inter);
      }
      const d = (await w.linear(`${p}.down_proj`)).data; // [H, I]
      for (let h = 0; h < hidden; h++) for (let i = 0; i < inter; i++) down[(e * inter + i) * hidden + h] = d[h * inter + i]!;
      const db = await w.optionalVector(`${p}.down_proj.bias`);
      if (db) downBias.set(db, e * hidden);
    }
  }
  const gate = new Float32Array(count * hidden * inter);
  const up = new Float32Array(count * hidden * inter);
  for (let e = 0; e < count; e++) {
    for (let h = 0; h < hidden; h++) {
      const row = (e * hidden + h) * e2;
      for (let j = 0; j < inter; j++) {
        gate[(e * hidden + h) * inter + j] = fused[row + 2 * j]!;
        up[(e * hidden + h) * inter + j] = fused[row + 2 * j + 1]!;
      }
    }
  }
  return { gate, up, down, ...interleavedBiases(fusedBias, downBias, count, inter) };
}

/** The fused gate/up biases `[count, 2I]` (interleaved) split into gate and up, with the down biases. */
function interleavedBiases(fusedBias: Float32Array, downBias: Float32Array, count: number, inter: number): Pick<GptOssExperts, 'gateBias' | 'upBias' | 'downBias'> {
  const gateBias = new Float32Array(count * inter);
  const upBias = new Float32Array(count * inter);
  for (let e = 0; e < count; e++) {
    for (let j = 0; j < inter; j++) {
      gateBias[e * inter + j] = fusedBias[e * 2 * inter + 2 * j]!;
      upBias[e * inter + j] = fusedBias[e * 2 * inter + 2 * j + 1]!;
    }
  }
  return { gateBias, upBias, downBias };
}

/** Experts `[start, start + count)` of `m` on every token `x [N, H]`, combined by `routing` into `[N, H]`. */
async function gptOssExpertRange(g: GraphBuilder, w: WeightReader, m: string, x: string, routing: Routing, start: number, count: number, hidden: number, inter: number): Promise<string> {
  // On the device in bf16 the experts go in as the checkpoint stores them (moe.ts); else float32 stacks made here.
  const stored = storedInputMajorExperts(g, w, m, count, hidden, inter, start, true);
  const own = stored ? undefined : await readGptOssExperts(w, m, start, count, hidden, inter);
  const s = own ?? interleavedBiases(await w.slice(`${m}.experts.gate_up_proj_bias`, start, count), await w.slice(`${m}.experts.down_proj_bias`, start, count), count, inter);
  const weights = stored ?? inputMajorStack(g, own!, count, hidden, inter);
  const x3 = g.op('Unsqueeze', [x, g.i64([0])]);
  // `x @ W + b` of the eager experts: the product rounded, then the bias added and rounded again.
  const biased = (a: string, weight: string, bias: Float32Array, out: number): string => lowOp(g, 'Add', [matmul(g, a, weight, true), rounded(g, weightConst(g, bias, [count, 1, out]))]);
  const act = clampedSwiglu(g, biased(x3, weights.gate, s.gateBias, inter), biased(x3, weights.up, s.upBias, inter));
  const observedAs = `${inMemoryName(m)}.experts`;
  observeExperts(g, observedAs, ['gate_proj', 'up_proj'], x, false, routing.mask, count, start);
  observeExperts(g, observedAs, ['down_proj'], act, true, routing.mask, count, start);
  const out = biased(act, weights.down, s.downBias, hidden);
  return combineExperts(g, out, routing, count);
}

/** gpt-oss attention of layer `p` on normed input `h`: llama's, plus a sink logit per head; returns the o_proj output. */
async function sinkAttention(g: GraphBuilder, w: WeightReader, cfg: DecoderConfig, p: string, h: string, inp: LayerInputs): Promise<string> {
  const a = `${p}.self_attn`;
  const proj = async (name: string, heads: number): Promise<string> =>
    splitHeads(g, linear(g, h, await w.linearWeight(`${a}.${name}`), await w.optionalVector(`${a}.${name}.bias`)), heads, cfg.headDim);
  observeInput(g, [`${a}.q_proj`, `${a}.k_proj`, `${a}.v_proj`], h);
  const q = rotary(g, await proj('q_proj', cfg.heads), inp.cos, inp.sin, cfg.headDim);
  const k = rotary(g, await proj('k_proj', cfg.kvHeads), inp.cos, inp.sin, cfg.headDim);
  const v = await proj('v_proj', cfg.kvHeads);
  observeInput(g, [`${a}.key_states`], k);
  observeInput(g, [`${a}.value_states`], v);
  const merged = sinkAttend(g, q, k, v, inp.mask, await w.vector(`${a}.sinks`), cfg);
  observeInput(g, [`${a}.o_proj`], merged);
  return linear(g, merged, await w.linearWeight(`${a}.o_proj`), await w.optionalVector(`${a}.o_proj.bias`));
}

/**
 * Attention of rotated heads `q [B, heads, T, d]`, `k`/`v [B, kvHeads, T, d]`
 * with one sink logit per head (a softmax column the output drops); returns
 * the merged heads `[B, T, heads·d]`. In the low dtype as the eager attention
 * computes it, op by op: the scores' product, scaling and mask each rounded,
 * the row max subtracted (rounded), the softmax in float32 rounded once, the
 * product with the values rounded.
 */
export function sinkAttend(g: GraphBuilder, q: string, k: string, v: string, mask: string, sinkLogits: Float32Array, cfg: DecoderConfig): string {
  const rep = cfg.heads / cfg.kvHeads;
  const repeat = (x: string): string =>
    rep === 1 ? x : g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [x, g.i64([2])]), g.i64([1, 1, rep, 1, 1])]), g.i64([0, cfg.heads, -1, cfg.headDim])]);
  const kt = g.op('Transpose', [repeat(k)], { perm: [0, 1, 3, 2] });
  // Operands that are values of the low dtype (the scale where it is one, the mask's 0 and -inf, the bf16 sinks) are
  // rounded as such, so that on the device the [B, heads, T, T] ops run on low tensors (narrow.ts): the same values.
  const low = graphPrecision(g);
  const scale = cfg.headDim ** -0.5;
  const scaleValue = low && roundTo(low.dtype)(scale) === scale ? rounded(g, g.f32(scale)) : g.f32(scale);
  const scaled = lowOp(g, 'Mul', [matmul(g, q, kt), scaleValue]);
  const scores = lowOp(g, 'Add', [scaled, rounded(g, mask)]);
  // The sink column [B, heads, T, 1]: each head's sink logit.
  const sinks = rounded(g, weightConst(g, sinkLogits, [1, cfg.heads, 1, 1]));
  const column = g.op('Expand', [sinks, g.op('Shape', [g.op('Slice', [scaled, g.i64([0]), g.i64([1]), g.i64([-1])])])]);
  const probs = sinkSoftmax(g, g.op('Concat', [scores, column], { axis: -1 }));
  const kept = g.op('Slice', [probs, g.i64([0]), g.i64([-1]), g.i64([-1])]);
  const out = matmul(g, kept, repeat(v));
  return g.op('Reshape', [g.op('Transpose', [out], { perm: [0, 2, 1, 3] }), g.i64([0, 0, cfg.heads * cfg.headDim])]);
}

/**
 * The softmax of the logits with their sink column. The eager attention
 * subtracts the row max first (a rounded bf16 op) and takes the softmax of
 * the bf16 result in float32, rounded once.
 */
function sinkSoftmax(g: GraphBuilder, logits: string): string {
  if (!graphPrecision(g)) return g.op('Softmax', [logits], { axis: -1 });
  // The row max of low values is one (rounding it changes nothing), so the subtraction runs on low tensors on the device.
  const shifted = lowOp(g, 'Sub', [logits, rounded(g, g.op('ReduceMax', [logits, g.i64([-1])], { keepdims: 1 }))]);
  return rounded(g, g.op('Softmax', [shifted], { axis: -1 }));
}

/** gpt-oss's clamped SwiGLU of `gate` and `up` (de-interleaved, biases added); in the low dtype each op after the (exact) clamps rounded. */
export function clampedSwiglu(g: GraphBuilder, gate: string, up: string): string {
  const gc = g.op('Min', [gate, g.f32(LIMIT)]);
  const uc = g.op('Clip', [up, g.f32(-LIMIT), g.f32(LIMIT)]);
  const glu = lowOp(g, 'Mul', [gc, lowOp(g, 'Sigmoid', [lowOp(g, 'Mul', [gc, g.f32(ALPHA)])])]);
  return lowOp(g, 'Mul', [lowOp(g, 'Add', [uc, g.f32(1)]), glu]);
}

/** Builds gpt-oss decoder layer `layer`. */
export async function gptOssLayer(w: WeightReader, cfg: DecoderConfig, layer: number, raw: Readonly<Record<string, unknown>>, options: LayerOptions = {}): Promise<LayerProgram> {
  const placement: ExpertPlacement = { groupBytes: options.expertGroupBytes ?? EXPERT_GROUP_BYTES, observe: options.observe };
  const experts = expertCount(raw);
  const k = Number(raw.num_experts_per_tok ?? 4);
  const inter = cfg.intermediate;
  const graph = await decoderLayer(
    w,
    cfg,
    layer,
    async (g, p, h) => {
      const m = `${p}.mlp`;
      const x = flatten(g, h, cfg.hidden);
      const logits = linear(g, x, await w.linearWeight(`${m}.router`), await w.vector(`${m}.router.bias`));
      const [values, indices] = g.opMulti('TopK', [logits, g.i64([k])], 2, { axis: -1, largest: 1, sorted: 1 });
      // The top-k of the rounded logits; their softmax in float32, rounded once (softmax on bf16 values).
      const routing = scatterTopK(g, logits, rounded(g, g.op('Softmax', [values!], { axis: -1 })), indices!, k);
      routedCountOutput(g, routing.mask, experts, `routed${options.into?.suffix ?? ''}`);
      // SmoothQuant balances the post-attention norm against every expert's gate/up: their input is the block input.
      const gateUp = Array.from({ length: experts }, (_, e) => ['gate_proj', 'up_proj'].map((p) => `${inMemoryName(m)}.experts.${e}.${p}`)).flat();
      observeChannels(g, gateUp, x);
      // Weights and biases, float32, per expert: gate/up/down `3·H·I` plus `2·I + H`.
      const bytes = 4 * (3 * cfg.hidden * inter + 2 * inter + cfg.hidden);
      const out = await placedExperts(g, x, routing, experts, cfg.hidden, bytes, placement, (gg, xin, r, start, count) => gptOssExpertRange(gg, w, m, xin, r, start, count, cfg.hidden, inter));
      return unflatten(g, out, h);
    },
    (g, p, h, inp) => sinkAttention(g, w, cfg, p, h, inp),
    options,
  );
  return { graph, expertGroups: placement.groups };
}
