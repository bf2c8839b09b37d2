/**
 * Calibration records as llm-compressor users have them (chat messages,
 * text, prompt/completion; JSONL, Parquet, Arrow; shuffled or not): the
 * token ids quantc feeds equal those of llm-compressor's preprocessing with
 * transformers' apply_chat_template and tokenizer
 * (test/fixtures/scripts/make_hub_refs.py).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { calibrationSamples } from '../src/execute/calibrate/calibration-data.js';
import { readCalibrationData } from '../src/execute/calibrate/dataset-file.js';
import { DataFileError } from '../src/execute/calibrate/text-data.js';
import { loadChatTemplate } from '../src/execute/tokenize/chat-template.js';
import { loadTokenizer } from '../src/execute/tokenize/tokenizer.js';

const HUB = 'test/fixtures/hub';

interface RefCase {
  readonly model: string;
  readonly file: string;
  readonly samples: number;
  readonly seqLen: number;
  readonly shuffle: number | null;
  readonly ids: number[][];
}

const refs = JSON.parse(readFileSync(join(HUB, 'refs.json'), 'utf8')) as { cases: RefCase[] };

describe('token parity with llm-compressor preprocessing', () => {
  test.each(refs.cases.map((c) => [`${c.model} ${c.file} samples ${c.samples} seq ${c.seqLen} shuffle ${c.shuffle}`, c] as const))('%s', async (_, c) => {
    const dir = join(HUB, c.model);
    const tokenizer = await loadTokenizer(dir);
    const chat = await loadChatTemplate(dir);
    const data = await readCalibrationData(join(HUB, 'data', c.file));
    const s = calibrationSamples(data, tokenizer, { samples: c.samples, seqLen: c.seqLen, batchSize: 1, ...(c.shuffle === null ? {} : { shuffleSeed: BigInt(c.shuffle) }) }, chat);
    expect(s.batches.map((b) => b[0])).toEqual(c.ids);
  });
});

describe('chat templates', () => {
  test('chat_template.jinja wins, tokenizer_config.json is the fallback, and the special tokens are passed', async () => {
    const jinja = await loadChatTemplate(join(HUB, 'tiny-chat'));
    expect(jinja?.source).toMatch(/chat_template\.jinja$/);
    expect(jinja?.render([{ role: 'user', content: 'hi' }])).toBe('<|begin_of_text|><|im_start|>system\nYou are a tiny model.<|im_end|>\n<|im_start|>user\nhi<|im_end|>');
    const config = await loadChatTemplate(join(HUB, 'config-template'));
    expect(config?.source).toMatch(/tokenizer_config\.json$/);
    expect(() => config?.render([{ role: 'tool', content: 'x' }])).toThrow(/Unknown role tool/);
    expect(await loadChatTemplate('test/fixtures/calibration')).toBeUndefined();
  });
});

describe('data files', () => {
  test('records need text, messages or prompt and completion; broken files are one line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-data-'));
    await writeFile(join(dir, 'bad.jsonl'), '{"text": "a"}\n{"question": "b"}\n');
    await expect(readCalibrationData(join(dir, 'bad.jsonl'))).rejects.toThrow(new DataFileError(`${join(dir, 'bad.jsonl')}:2: a record needs a "text" string, "messages", or "prompt" and "completion"`));
    await writeFile(join(dir, 'bad.parquet'), 'PAR1 not really');
    await expect(readCalibrationData(join(dir, 'bad.parquet'))).rejects.toThrow(/bad\.parquet is not a Parquet file quantc can read \(/);
    await writeFile(join(dir, 'bad.arrow'), 'nope');
    await expect(readCalibrationData(join(dir, 'bad.arrow'))).rejects.toThrow(/bad\.arrow is not an Arrow IPC file quantc can read/);
    await expect(readCalibrationData(dir)).rejects.toThrow(/without data-\*\.arrow files/);
    await writeFile(join(dir, 'array.json'), JSON.stringify([{ prompt: [{ role: 'user', content: 'q' }], completion: [{ role: 'assistant', content: 'a' }] }]));
    expect(await readCalibrationData(join(dir, 'array.json'))).toEqual({ kind: 'records', records: [{ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] }] });
    await rm(dir, { recursive: true, force: true });
  });
});
