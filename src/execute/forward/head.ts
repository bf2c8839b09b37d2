/**
 * The model head: final norm and `lm_head` (its bias, if any), built per vocabulary slice so
 * a large `lm_head` (vocab 128k × hidden 4096 is over 2 GB in float32) never
 * has to fit one graph. Each slice graph returns either its logits or, given
 * next-token targets, its log-sum-exp and the target's logit where the target
 * falls in the slice; the caller combines slices, so perplexity never moves
 * `[B, T, vocab]` logits out.
 */
import { GraphBuilder, OnnxType } from '../onnx/graph-builder.js';
import type { DecoderConfig } from './decoder-config.js';
import type { DenseMatrix } from './dequantize.js';
import { decoderNorm } from './llama-layer.js';
import { enableObservers, observeInput, type Observation } from './observe.js';
import { linear } from './ops.js';
import { lowOp, setGraphPrecision, type LowPrecision } from './precision.js';
import type { WeightReader } from './weights.js';

/** What the head returns. */
export type HeadOutput = 'logits' | 'nll';

/** Default bound on one slice's float32 `lm_head` rows. */
export const HEAD_SLICE_BYTES = 1 << 30;

/** The `lm_head` matrix's source tensor: its own, or the tied embedding. */
function headTensor(w: WeightReader, cfg: DecoderConfig): string {
  return cfg.tieEmbeddings || !w.hasLinear(w.names.head) ? `${w.names.model}.embed_tokens` : w.names.head;
}

/** Rows `[start, start + count)` of the head matrix. */
async function headRows(w: WeightReader, cfg: DecoderConfig, start: number, count: number): Promise<DenseMatrix> {
  const name = headTensor(w, cfg);
  if (w.has(`${name}.weight`) && !w.has(`${name}.weight_scale`)) return { data: await w.slice(`${name}.weight`, start, count), rows: count, cols: cfg.hidden };
  const full = name.endsWith('lm_head') ? await w.linear(name) : await w.matrix(`${name}.weight`);
  return { data: full.data.slice(start * full.cols, (start + count) * full.cols), rows: count, cols: full.cols };
}

/**
 * Builds the head graph of vocabulary rows `[start, start + count)`: input
 * `hidden [B, T, H]`; output `logits [B, T, count]`, or for `nll` (with input
 * `targets [B, T]` int64) `lse [B, T]` and `picked [B, T]` (the target's
 * logit, 0 where the target is outside the slice).
 */
export async function headGraph(w: WeightReader, cfg: DecoderConfig, output: HeadOutput, start = 0, count = cfg.vocabSize, precision?: LowPrecision): Promise<Uint8Array> {
  const g = new GraphBuilder();
  // In the low dtype the logits are rounded; the loss reads them upcast to float32.
  setGraphPrecision(g, precision);
  const x = g.input('hidden', OnnxType.float, ['batch', 'seq', cfg.hidden]);
  const h = await decoderNorm(g, w, cfg, `${w.names.model}.norm`, x);
  // Served-model simulation: a quantized lm_head fake-quantizes its input (before its rows are read).
  const head = headTensor(w, cfg);
  const q = head.endsWith('lm_head') ? await w.inputQuantizer(head, 'whole') : undefined;
  const bias = head.endsWith('lm_head') ? (await w.optionalVector(`${head}.bias`))?.slice(start, start + count) : undefined;
  const projected = linear(g, q ? q.quantize(g, h) : h, await headRows(w, cfg, start, count), bias);
  // GraniteMoE divides the logits by `logits_scaling` (on bf16 logits: rounded).
  const logits = cfg.logitsScaling === undefined ? projected : lowOp(g, 'Div', [projected, g.f32(cfg.logitsScaling)]);
  if (output === 'logits') {
    g.output(logits, 'logits', OnnxType.float, ['batch', 'seq', count]);
  } else {
    const targets = g.input('targets', OnnxType.int64, ['batch', 'seq']);
    g.output(g.op('ReduceLogSumExp', [logits, g.i64([-1])], { keepdims: 0 }), 'lse', OnnxType.float, ['batch', 'seq']);
    const local = g.op('Sub', [targets, g.i64(start)]);
    const inSlice = g.op('And', [g.op('GreaterOrEqual', [local, g.i64(0)]), g.op('Less', [local, g.i64(count)])]);
    const index = g.op('Clip', [local, g.i64(0), g.i64(count - 1)]);
    const picked = g.op('Squeeze', [g.op('GatherElements', [logits, g.op('Unsqueeze', [index, g.i64([-1])])], { axis: -1 }), g.i64([-1])]);
    g.output(g.op('Where', [inSlice, picked, g.f32(0)]), 'picked', OnnxType.float, ['batch', 'seq']);
  }
  return g.build(`head_${output}_${start}`);
}

/**
 * The head's calibration graph: input `hidden [B, T, H]`, the final norm,
 * and `observe`'s statistics of its output as the input of `head` (the
 * final subgraph llm-compressor's sequential pipeline calibrates after the
 * last decoder layer; the logits themselves are not needed).
 */
export async function headObserverGraph(w: WeightReader, cfg: DecoderConfig, head: string, observe: Observation, precision?: LowPrecision): Promise<Uint8Array> {
  const g = new GraphBuilder();
  enableObservers(g, observe);
  setGraphPrecision(g, precision);
  const x = g.input('hidden', OnnxType.float, ['batch', 'seq', cfg.hidden]);
  const h = await decoderNorm(g, w, cfg, `${w.names.model}.norm`, x);
  observeInput(g, [head], h);
  return g.build('head_observers');
}

/** Vocabulary rows per head slice for a bound of `bytes` float32 bytes. */
export function headSliceRows(cfg: DecoderConfig, bytes = HEAD_SLICE_BYTES): number {
  return Math.max(1, Math.min(cfg.vocabSize, Math.floor(bytes / (cfg.hidden * 4))));
}
