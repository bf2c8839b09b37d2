/**
 * Dense MLPs too large for one graph (70B-class layers, DeepSeek-V3's dense
 * layers) run as slices of the intermediate dimension after the layer's main
 * graph, through the same machinery as expert groups: each slice is an
 * "expert" with routing weight 1, computing `down[:, s](silu(gate[s] x) ·
 * up[s] x)`; the slices' outputs add up to the MLP output. Observers of the
 * down projection's input are emitted per slice with a `#<slice>` suffix and
 * merge into one min/max. Its Hessian (GPTQ) needs the cross-slice blocks
 * `xₛᵀxₜ`: each slice graph returns its activation slice, and the executor
 * runs {@link joinedHessian}'s graphs on the slices side by side, batch by
 * batch (every slice's graph resident at once).
 */
import { GraphBuilder, OnnxType } from '../onnx/graph-builder.js';
import { UnsupportedModelError, type DecoderConfig } from './decoder-config.js';
import { flatten, type ExpertPlacement } from './moe.js';
import { enableObservers, joinedHessian, observeInput, observesHessians } from './observe.js';
import { mlpSlices } from './mlp-slices.js';
import { linear, silu, weightConst } from './ops.js';
import { inheritPrecision, lowOp, matmul, partialMatmul } from './precision.js';
import type { WeightReader } from './weights.js';

/** `down(silu(gate(h)) * up(h))` of the MLP module `m`. */
export async function gatedMlp(g: GraphBuilder, w: WeightReader, m: string, h: string, bias: boolean): Promise<string> {
  const b = async (name: string): Promise<Float32Array | undefined> => (bias ? w.optionalVector(`${m}.${name}.bias`) : undefined);
  observeInput(g, [`${m}.gate_proj`, `${m}.up_proj`], h);
  const gate = linear(g, h, await w.linearWeight(`${m}.gate_proj`), await b('gate_proj'));
  const up = linear(g, h, await w.linearWeight(`${m}.up_proj`), await b('up_proj'));
  const act = lowOp(g, 'Mul', [silu(g, gate), up]);
  observeInput(g, [`${m}.down_proj`], act);
  return linear(g, act, await w.linearWeight(`${m}.down_proj`), await b('down_proj'));
}

/** Rows `[start, start + count)` of `[rows, cols]` row-major `m`, transposed to `[cols, count]`. */
function rowsTransposed(m: Float32Array, cols: number, start: number, count: number): Float32Array {
  const out = new Float32Array(cols * count);
  for (let r = 0; r < count; r++) for (let c = 0; c < cols; c++) out[c * count + r] = m[(start + r) * cols + c]!;
  return out;
}

/** Columns `[start, start + count)` of `[rows, cols]` row-major `m`, transposed to `[count, rows]`. */
function columnsTransposed(m: Float32Array, rows: number, cols: number, start: number, count: number): Float32Array {
  const out = new Float32Array(count * rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < count; c++) out[c * rows + r] = m[r * cols + start + c]!;
  return out;
}

/**
 * The SiLU-gated MLP `m` on normed input `h [B, T, H]`: inside the graph when
 * its float32 weights fit `placement.groupBytes`, else zero here with its
 * intermediate slices recorded in `placement` (see the module comment).
 */
export async function denseMlp(g: GraphBuilder, w: WeightReader, cfg: DecoderConfig, m: string, h: string, placement: ExpertPlacement): Promise<string> {
  const inter = cfg.intermediate || (await w.linear(`${m}.gate_proj`)).rows;
  if (mlpSlices(cfg.hidden, inter, placement.groupBytes).slices === 1) return gatedMlp(g, w, m, h, cfg.mlpBias);
  if (cfg.mlpBias) throw new UnsupportedModelError(`${m}: an MLP with biases larger than one graph is not supported`);
  // Served-model simulation: gate/up see whole input rows, down_proj a slice of its input's columns
  // (kept a multiple of its quantization group).
  const [qGate, qUp, qDown] = await Promise.all([w.inputQuantizer(`${m}.gate_proj`, 'whole'), w.inputQuantizer(`${m}.up_proj`, 'whole'), w.inputQuantizer(`${m}.down_proj`, 'column-slice')]);
  const { slice, slices, hessianRows } = mlpSlices(cfg.hidden, inter, placement.groupBytes, qDown?.align ?? 1);
  const x = flatten(g, h, cfg.hidden);
  observeInput(g, [`${m}.gate_proj`, `${m}.up_proj`], h);
  const ones = g.op('Expand', [g.op('Add', [g.op('Mul', [g.op('Slice', [x, g.i64([0]), g.i64([1]), g.i64([1])]), g.f32(0)]), g.f32(1)]), g.i64([1, slices])]);
  g.output(x, 'moe_in', OnnxType.float, ['tokens', cfg.hidden]);
  g.output(ones, 'moe_weights', OnnxType.float, ['tokens', slices]);
  g.output(ones, 'moe_mask', OnnxType.float, ['tokens', slices]);
  placement.groups = {
    experts: slices,
    groupSize: 1,
    slices: true,
    ...(observesHessians(placement.observe) ? { joined: joinedHessian([`${m}.down_proj`], inter, hessianRows) } : {}),
    build: async (index) => {
      const start = index * slice;
      const count = Math.min(slice, inter - start);
      const gg = new GraphBuilder();
      if (placement.observe) enableObservers(gg, placement.observe);
      inheritPrecision(gg, g);
      const xin = gg.input('moe_in', OnnxType.float, ['tokens', cfg.hidden]);
      gg.input('moe_weights', OnnxType.float, ['tokens', 1]);
      gg.input('moe_mask', OnnxType.float, ['tokens', 1]);
      const gate = matmul(gg, qGate ? qGate.quantize(gg, xin) : xin, weightConst(gg, rowsTransposed((await w.linear(`${m}.gate_proj`)).data, cfg.hidden, start, count), [cfg.hidden, count]), true);
      const up = matmul(gg, qUp ? qUp.quantize(gg, xin) : xin, weightConst(gg, rowsTransposed((await w.linear(`${m}.up_proj`)).data, cfg.hidden, start, count), [cfg.hidden, count]), true);
      const act = lowOp(gg, 'Mul', [silu(gg, gate), up]);
      observeInput(gg, [`${m}.down_proj`], act, `#${index}`);
      const down = await w.linear(`${m}.down_proj`);
      gg.output(partialMatmul(gg, qDown ? qDown.quantize(gg, act) : act, weightConst(gg, columnsTransposed(down.data, down.rows, down.cols, start, count), [count, down.rows])), 'partial', OnnxType.float, ['tokens', cfg.hidden]);
      return gg.build(`mlp_slice_${index}`);
    },
  };
  return g.op('Mul', [h, g.f32(0)]);
}
