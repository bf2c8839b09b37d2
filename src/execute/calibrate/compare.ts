/**
 * Perplexity of a model next to a baseline on the same windows, and how far
 * each decoder layer's output drifts from the baseline's. Both models run
 * layer by layer side by side (layer i of one, then layer i of the other, on
 * the same batches), so only one layer of each is resident and the drift is
 * measured as the hidden states pass, without keeping them.
 *
 * Drift of layer i: the relative L2 distance of its outputs over every
 * token of every window, `sqrt(Σ (h - b)²) / sqrt(Σ b²)`, with `h` the
 * model's and `b` the baseline's output of layer i (before the final norm),
 * each model fed its own previous layer's output (so drift accumulates
 * through the layers, as it does when the model runs).
 */
import type { ForwardModel, HiddenBatch, RunOptions } from '../forward/executor.js';
import { CoverageCollector } from './coverage.js';
import { nllSum, windows, type PerplexityResult } from './perplexity.js';
import { MAX_RESIDENT_ACTIVATION_BYTES } from './resident.js';

/** The outcome of a comparison: the model's perplexity, the baseline's, their ratio and the per-layer drift. */
export interface ComparisonResult {
  readonly model: PerplexityResult;
  readonly baseline: Omit<PerplexityResult, 'coverage'>;
  /** model perplexity / baseline perplexity. */
  readonly ratio: number;
  /** Relative L2 drift of each decoder layer's output (see the module comment), layer by layer. */
  readonly layerDrift: number[];
}

/** Two models that cannot be compared layer by layer; the message is user-facing. */
export class IncomparableModelsError extends Error {}

/** Adds `Σ (h - b)²` and `Σ b²` of one batch to `acc`. */
function addDrift(acc: { diff: number; base: number }, h: HiddenBatch, b: HiddenBatch): void {
  const x = h.data;
  const y = b.data;
  for (let i = 0; i < y.length; i++) {
    const d = x[i]! - y[i]!;
    acc.diff += d * d;
    acc.base += y[i]! * y[i]!;
  }
}

/** Perplexity of `model` and `baseline` on `ids` and the drift of each layer; throws a RangeError when no full window fits. */
export async function comparePerplexity(
  model: ForwardModel,
  baseline: ForwardModel,
  ids: readonly number[],
  seqLen: number,
  batchSize: number,
  options: Pick<RunOptions, 'onLayerStart'> = {},
  maxResidentBytes = MAX_RESIDENT_ACTIVATION_BYTES,
): Promise<ComparisonResult> {
  const layers = model.config.layers;
  if (baseline.config.layers !== layers || baseline.config.hidden !== model.config.hidden) {
    throw new IncomparableModelsError(`the models have ${layers} layers of ${model.config.hidden} and ${baseline.config.layers} layers of ${baseline.config.hidden}`);
  }
  const batches = windows(ids, seqLen, batchSize);
  if (batches.length === 0) throw new RangeError(`the data has ${ids.length} tokens, fewer than one window of ${seqLen}`);
  const coverage = new CoverageCollector();
  // Two models' hidden states are resident at once.
  const perBatch = 2 * batchSize * seqLen * model.config.hidden * 4;
  const chunk = Math.max(1, Math.floor(maxResidentBytes / perBatch));
  const drift = Array.from({ length: layers }, () => ({ diff: 0, base: 0 }));
  const sums = { model: { sum: 0, count: 0 }, baseline: { sum: 0, count: 0 } };
  const inputsModel = model.positionTables();
  const inputsBaseline = baseline.positionTables();
  for (let start = 0; start < batches.length; start += chunk) {
    const part = batches.slice(start, start + chunk);
    let h = await model.embed(part);
    let b = await baseline.embed(part);
    for (let layer = 0; layer < layers; layer++) {
      options.onLayerStart?.(layer, layers);
      const ran = await model.runLayer(layer, h, {}, inputsModel);
      ran.extras.forEach((extra) => coverage.add(layer, extra));
      h = ran.hidden;
      b = (await baseline.runLayer(layer, b, {}, inputsBaseline)).hidden;
      h.forEach((batch, i) => addDrift(drift[layer]!, batch, b[i]!));
    }
    for (const [key, m, hidden] of [['model', model, h], ['baseline', baseline, b]] as const) {
      const s = await nllSum(m, hidden, part, seqLen);
      sums[key].sum += s.sum;
      sums[key].count += s.count;
    }
  }
  const n = batches.reduce((a, x) => a + x.length, 0);
  const result = (s: { sum: number; count: number }): Omit<PerplexityResult, 'coverage'> => ({
    perplexity: Math.exp(s.sum / s.count),
    meanNll: s.sum / s.count,
    windows: n,
    tokens: n * seqLen,
    predicted: s.count,
  });
  const m = { ...result(sums.model), coverage: coverage.report(n * seqLen, true) };
  const base = result(sums.baseline);
  return { model: m, baseline: base, ratio: m.perplexity / base.perplexity, layerDrift: drift.map((d) => Math.sqrt(d.diff) / Math.sqrt(d.base)) };
}

/** JSON with object keys sorted, so that equal content compares equal whatever the key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The parts of a tokenizer.json that decide the token ids of a text. */
const TOKENIZER_PARTS = ['model', 'added_tokens', 'normalizer', 'pre_tokenizer'] as const;

/** What each model folder says about itself, as far as comparability goes. */
export interface ComparableSide {
  readonly label: string;
  readonly config: Readonly<Record<string, unknown>>;
  /** tokenizer.json parsed, or null when the folder has none. */
  readonly tokenizer: Readonly<Record<string, unknown>> | null;
}

/** Why `model` cannot be compared with `baseline` (architecture, depth and width, vocabulary, tokenizer), or null when it can. */
export function incomparability(model: ComparableSide, baseline: ComparableSide): string | null {
  const a = model.config;
  const b = baseline.config;
  const type = (c: Readonly<Record<string, unknown>>): string => String(c.model_type ?? 'unknown');
  if (type(a) !== type(b)) return `${baseline.label} is a ${type(b)} model and ${model.label} a ${type(a)} model; --baseline needs the same architecture`;
  const shape = (c: Readonly<Record<string, unknown>>): string => `${String(c.num_hidden_layers)} layers of ${String(c.hidden_size)}`;
  if (shape(a) !== shape(b)) return `${baseline.label} has ${shape(b)} and ${model.label} ${shape(a)}; --baseline needs the same architecture`;
  if (a.vocab_size !== b.vocab_size) return `${baseline.label} has a vocabulary of ${String(b.vocab_size)} tokens and ${model.label} ${String(a.vocab_size)}; the perplexities would not be comparable`;
  if (!baseline.tokenizer) return `${baseline.label} has no tokenizer.json; --baseline needs the same tokenizer as the model`;
  if (!model.tokenizer) return null; // the model's own missing tokenizer is reported as eval-no-tokenizer
  const differs = TOKENIZER_PARTS.filter((p) => canonical(model.tokenizer![p] ?? null) !== canonical(baseline.tokenizer![p] ?? null));
  if (differs.length > 0) return `${baseline.label} and ${model.label} tokenize differently (their tokenizer.json differ in ${differs.join(', ')}); the perplexities would not be comparable`;
  return null;
}
