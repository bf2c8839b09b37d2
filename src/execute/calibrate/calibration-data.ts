/**
 * Calibration samples from text. Plain text is tokenized without special
 * tokens and cut into non-overlapping windows of `seqLen` tokens, as `eval`
 * does; JSON Lines records are one sample each, tokenized as
 * llm-compressor's dataset preprocessing does (with the tokenizer's special
 * tokens, truncated to `seqLen`; blank records are skipped), and a batch of records is cut to its
 * shortest record (its `truncation` collator). Samples keep the file's
 * order.
 */
import type { TokenBatch } from '../forward/executor.js';
import type { TextTokenizer } from '../tokenize/tokenizer.js';
import type { TextRecords } from './text-data.js';

/** How many samples of what length, in what batches. */
export interface SampleOptions {
  readonly samples: number;
  readonly seqLen: number;
  readonly batchSize: number;
}

/** The samples a calibration runs on. */
export interface CalibrationSamples {
  readonly batches: TokenBatch[];
  /** Samples used (at most the requested number). */
  readonly samples: number;
  /** Tokens run through the model. */
  readonly tokens: number;
}

/** Groups rows into batches of `batchSize`, each cut to its shortest row. */
function batch(rows: readonly (readonly number[])[], batchSize: number): TokenBatch[] {
  const batches: TokenBatch[] = [];
  for (let i = 0; i < rows.length; i += batchSize) {
    const part = rows.slice(i, i + batchSize);
    const len = Math.min(...part.map((r) => r.length));
    batches.push(part.map((r) => r.slice(0, len)));
  }
  return batches;
}

/** The samples of `data` (see the module comment); empty when the data holds no full window or no non-empty record. */
export function calibrationSamples(data: TextRecords, tokenizer: TextTokenizer, o: SampleOptions): CalibrationSamples {
  let rows: number[][];
  if (data.kind === 'text') {
    const ids = tokenizer.encode(data.text);
    const n = Math.min(o.samples, Math.floor(ids.length / o.seqLen));
    rows = Array.from({ length: n }, (_, w) => ids.slice(w * o.seqLen, (w + 1) * o.seqLen));
  } else {
    rows = [];
    for (const text of data.records) {
      if (rows.length === o.samples) break;
      if (text.trim() === '') continue;
      const ids = tokenizer.encode(text, true).slice(0, o.seqLen);
      if (ids.length > 0) rows.push(ids);
    }
  }
  const batches = batch(rows, o.batchSize);
  return { batches, samples: rows.length, tokens: batches.reduce((n, b) => n + b.length * (b[0]?.length ?? 0), 0) };
}
