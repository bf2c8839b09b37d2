/**
 * The model head as one graph: final RMSNorm and `lm_head`, returning either
 * the logits or, given next-token targets, each position's negative
 * log-likelihood (so perplexity never moves `[B, T, vocab]` logits out).
 */
import { GraphBuilder, OnnxType } from '../onnx/graph-builder.js';
import type { DecoderConfig } from './decoder-config.js';
import { linear, rmsNorm } from './ops.js';
import type { WeightReader } from './weights.js';

/** What the head graph returns. */
export type HeadOutput = 'logits' | 'nll';

/** Builds the head graph: input `hidden [B, T, H]` (+ `targets [B, T]` int64 for `nll`). */
export async function headGraph(w: WeightReader, cfg: DecoderConfig, output: HeadOutput): Promise<Uint8Array> {
  const g = new GraphBuilder();
  const x = g.input('hidden', OnnxType.float, ['batch', 'seq', cfg.hidden]);
  const h = rmsNorm(g, x, await w.vector('model.norm.weight'), cfg.eps);
  const lmHead = cfg.tieEmbeddings || !w.hasLinear('lm_head') ? await w.matrix('model.embed_tokens.weight') : await w.linear('lm_head');
  const logits = linear(g, h, lmHead);
  if (output === 'logits') {
    g.output(logits, 'logits', OnnxType.float, ['batch', 'seq', cfg.vocabSize]);
  } else {
    const targets = g.input('targets', OnnxType.int64, ['batch', 'seq']);
    const logp = g.op('LogSoftmax', [logits], { axis: -1 });
    const picked = g.op('GatherElements', [logp, g.op('Unsqueeze', [targets, g.i64([-1])])], { axis: -1 });
    g.output(g.op('Neg', [g.op('Squeeze', [picked, g.i64([-1])])]), 'nll', OnnxType.float, ['batch', 'seq']);
  }
  return g.build(`head_${output}`);
}
