/**
 * Calibration samples from text. Plain text is tokenized without special
 * tokens and cut into non-overlapping windows of `seqLen` tokens, as `eval`
 * does; records are one sample each, tokenized as llm-compressor's
 * preprocessing does: a text with the tokenizer's special tokens
 * (TextGenerationDataset.tokenize), a conversation rendered with the
 * model's chat template and tokenized without them (its examples:
 * `apply_chat_template(messages, tokenize=False)`, then the tokenizer with
 * `add_special_tokens=False`: the template writes its own BOS), both
 * truncated to `seqLen`; blank texts are skipped. A batch of records is cut
 * to its shortest record (the `truncation` collator). Samples keep the
 * file's order, or with a seed the order of `datasets`' `shuffle(seed)`
 * (numpy's permutation), of which the first `samples` are taken.
 */
import type { TokenBatch } from '../forward/executor.js';
import type { ChatTemplate } from '../tokenize/chat-template.js';
import type { TextTokenizer } from '../tokenize/tokenizer.js';
import type { CalibrationData } from './dataset-file.js';
import { numpyPermutation } from './numpy-permutation.js';

/** How many samples of what length, in what batches. */
export interface SampleOptions {
  readonly samples: number;
  readonly seqLen: number;
  readonly batchSize: number;
  /** Shuffle as `Dataset.shuffle(seed=...)` before taking the first `samples` (records, or the windows of a plain text). */
  readonly shuffleSeed?: bigint;
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

/** The order records are taken in: the file's, or the shuffled one. */
function order(n: number, seed: bigint | undefined): readonly number[] {
  return seed === undefined ? Array.from({ length: n }, (_, i) => i) : numpyPermutation(seed, n);
}

/**
 * The samples of `data` (see the module comment); empty when the data holds
 * no full window or no non-empty record. Conversations need `chat`, the
 * model's template.
 */
export function calibrationSamples(data: CalibrationData, tokenizer: TextTokenizer, o: SampleOptions, chat?: ChatTemplate): CalibrationSamples {
  let rows: number[][];
  if (data.kind === 'text') {
    const ids = tokenizer.encode(data.text);
    const windows = Math.floor(ids.length / o.seqLen);
    rows = order(windows, o.shuffleSeed)
      .slice(0, o.samples)
      .map((w) => ids.slice(w * o.seqLen, (w + 1) * o.seqLen));
  } else {
    rows = [];
    for (const i of order(data.records.length, o.shuffleSeed)) {
      if (rows.length === o.samples) break;
      const record = data.records[i]!;
      let ids: number[];
      if (typeof record === 'string') {
        if (record.trim() === '') continue;
        ids = tokenizer.encode(record, true);
      } else {
        if (!chat) throw new Error('calibrationSamples: conversations need the chat template');
        ids = tokenizer.encode(chat.render(record.messages), false);
      }
      if (ids.length > 0) rows.push(ids.slice(0, o.seqLen));
    }
  }
  const batches = batch(rows, o.batchSize);
  return { batches, samples: rows.length, tokens: batches.reduce((n, b) => n + b.length * (b[0]?.length ?? 0), 0) };
}
