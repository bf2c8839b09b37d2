import { describe, expect, test } from 'vitest';
import { calibrationSamples } from '../src/execute/calibrate/calibration-data.js';
import type { TextTokenizer } from '../src/execute/tokenize/tokenizer.js';

/** One id per character (its code), a BOS of 0 when special tokens are asked for. */
const chars: TextTokenizer = { encode: (text, special = false) => [...(special ? [0] : []), ...Array.from(text, (c) => c.charCodeAt(0))] };

describe('calibration samples', () => {
  test('plain text: non-overlapping windows without special tokens, at most --samples, trailing part dropped', () => {
    const s = calibrationSamples({ kind: 'text', text: 'abcdefghij' }, chars, { samples: 512, seqLen: 3, batchSize: 2 });
    expect(s.batches).toEqual([
      [
        [97, 98, 99],
        [100, 101, 102],
      ],
      [[103, 104, 105]],
    ]);
    expect([s.samples, s.tokens]).toEqual([3, 9]);
    expect(calibrationSamples({ kind: 'text', text: 'abcdefghij' }, chars, { samples: 2, seqLen: 3, batchSize: 1 }).samples).toBe(2);
    expect(calibrationSamples({ kind: 'text', text: 'ab' }, chars, { samples: 2, seqLen: 3, batchSize: 1 }).samples).toBe(0);
  });

  test('JSON Lines: one sample per record with special tokens, truncated, empty ones skipped, batches cut to their shortest', () => {
    const s = calibrationSamples({ kind: 'records', records: ['abcdef', '', 'xy', 'pqr'] }, chars, { samples: 512, seqLen: 4, batchSize: 2 });
    expect(s.batches).toEqual([
      [
        [0, 97, 98],
        [0, 120, 121],
      ],
      [[0, 112, 113, 114]],
    ]);
    expect([s.samples, s.tokens]).toEqual([3, 10]);
  });
});
