/**
 * Perplexity with the forward executor. Definition: the token ids are cut
 * into non-overlapping windows of `seqLen` tokens (a trailing partial window
 * is dropped); perplexity = exp(mean next-token negative log-likelihood over
 * all predicted positions, i.e. `seqLen - 1` per window).
 */
import type { ForwardModel, HiddenBatch, RunOptions, TokenBatch } from '../forward/executor.js';
import { CoverageCollector, type ExpertCoverage } from './coverage.js';
import { MAX_RESIDENT_ACTIVATION_BYTES } from './resident.js';

/** Windows of `seqLen` tokens grouped into batches of at most `batchSize`. */
export function windows(ids: readonly number[], seqLen: number, batchSize: number): TokenBatch[] {
  const n = Math.floor(ids.length / seqLen);
  const batches: number[][][] = [];
  for (let w = 0; w < n; w++) {
    if (w % batchSize === 0) batches.push([]);
    batches[batches.length - 1]!.push(ids.slice(w * seqLen, (w + 1) * seqLen));
  }
  return batches;
}

/** The outcome of a perplexity run. */
export interface PerplexityResult {
  readonly perplexity: number;
  /** Mean next-token NLL in nats. */
  readonly meanNll: number;
  readonly windows: number;
  /** Tokens run through the model (windows × seqLen). */
  readonly tokens: number;
  /** Tokens whose next token was scored. */
  readonly predicted: number;
  /** Tokens routed to each expert of each MoE layer (empty `layers` for dense models). */
  readonly coverage: ExpertCoverage;
}


/** Sum and count of the next-token NLLs of windows `part` whose last hidden states are `hidden`. */
export async function nllSum(model: ForwardModel, hidden: HiddenBatch[], part: readonly TokenBatch[], seqLen: number): Promise<{ sum: number; count: number }> {
  const targets = part.map((b) => b.map((row) => [...row.slice(1), 0]));
  const nll = await model.head(hidden, 'nll', targets);
  let sum = 0;
  let count = 0;
  part.forEach((b, i) => {
    const values = nll[i]!;
    for (let r = 0; r < b.length; r++) for (let t = 0; t < seqLen - 1; t++, count++) sum += values[r * seqLen + t]!;
  });
  return { sum, count };
}

/** Perplexity of `model` on `ids`; throws a RangeError when no full window fits. */
export async function perplexity(
  model: ForwardModel,
  ids: readonly number[],
  seqLen: number,
  batchSize: number,
  options: RunOptions = {},
  maxResidentBytes = MAX_RESIDENT_ACTIVATION_BYTES,
): Promise<PerplexityResult> {
  const batches = windows(ids, seqLen, batchSize);
  if (batches.length === 0) throw new RangeError(`the data has ${ids.length} tokens, fewer than one window of ${seqLen}`);
  const coverage = new CoverageCollector();
  const perBatch = batchSize * seqLen * model.config.hidden * 4;
  const chunk = Math.max(1, Math.floor(maxResidentBytes / perBatch));
  let sum = 0;
  let count = 0;
  for (let start = 0; start < batches.length; start += chunk) {
    const part = batches.slice(start, start + chunk);
    const hidden = await model.layers(await model.embed(part), {
      ...options,
      onLayer: (layer, b, h, extra) => {
        coverage.add(layer, extra);
        options.onLayer?.(layer, start + b, h, extra);
      },
    });
    const scored = await nllSum(model, hidden, part, seqLen);
    sum += scored.sum;
    count += scored.count;
  }
  const meanNll = sum / count;
  const n = batches.reduce((a, b) => a + b.length, 0);
  return { perplexity: Math.exp(meanNll), meanNll, windows: n, tokens: n * seqLen, predicted: count, coverage: coverage.report(n * seqLen, true) };
}
