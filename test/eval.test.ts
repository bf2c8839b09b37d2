import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { perplexity, windows } from '../src/execute/calibrate/perplexity.js';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { loadTokenizer } from '../src/execute/tokenize/tokenizer.js';
import { readFile } from 'node:fs/promises';
import { CALIBRATION, modelWithTokenizer, textRefs } from './calibrate-refs.js';
import { memoryIo } from './memory-io.js';


const TEXT = join(CALIBRATION, 'text.txt');
const refs = await textRefs('llama');
const allRefs = Object.fromEntries(await Promise.all(['llama', 'qwen3_moe', 'glm4_moe_lite', 'olmoe', 'granitemoe', 'phimoe'].map(async (m) => [m, await textRefs(m)] as const)));

describe('tokenizer', () => {
  for (const style of ['bytelevel', 'sentencepiece']) {
    test(`${style} tokenizer.json: same ids as Python on accents, CJK, emoji, digits and whitespace`, async () => {
      const expected = JSON.parse(await readFile(join(CALIBRATION, 'tokenizers', 'expected.json'), 'utf8')) as Record<string, unknown>;
      const tok = await loadTokenizer(join(CALIBRATION, 'tokenizers', style));
      expect(tok.encode(expected.sample as string)).toEqual(expected[style]);
    });
  }

  test("tokenizer.json encodes the text as transformers' tokenizers does (no special tokens)", async () => {
    const tok = await loadTokenizer(CALIBRATION);
    expect(tok.encode(await readFile(TEXT, 'utf8'))).toEqual(refs.text_ids);
  });
});

describe('perplexity matches transformers 5.17', () => {
  test('windows drop the trailing partial window and batch', () => {
    expect(windows([1, 2, 3, 4, 5, 6, 7], 3, 1)).toEqual([[[1, 2, 3]], [[4, 5, 6]]]);
    expect(windows([1, 2, 3, 4, 5, 6, 7], 2, 2)).toEqual([[[1, 2], [3, 4]], [[5, 6]]]);
  });

  test('data larger than the activation bound runs in chunks with the same result', async () => {
    const model = await ForwardModel.open(await modelWithTokenizer('qwen3_moe'));
    const whole = await perplexity(model, refs.text_ids, 16, 2);
    const chunked = await perplexity(model, refs.text_ids, 16, 2, {}, 16 * 2 * 128 * 4 * 3);
    expect(chunked.perplexity).toBeCloseTo(whole.perplexity, 10);
    expect(chunked.coverage).toEqual(whole.coverage);
    expect(chunked.predicted).toBe(whole.predicted);
  });

  for (const [name, modelRefs] of Object.entries(allRefs)) {
    for (const [variant, bySeq] of Object.entries(modelRefs.perplexity)) {
      test(`${name} ${variant}`, async () => {
        const model = await ForwardModel.open(await modelWithTokenizer(name, variant));
        for (const [seq, expected] of Object.entries(bySeq)) {
          const r = await perplexity(model, modelRefs.text_ids, Number(seq), 4);
          expect(Math.abs(r.perplexity - expected) / expected, `seq ${seq}`).toBeLessThan(1e-5);
          expect(r.predicted).toBe(Math.floor(modelRefs.text_ids.length / Number(seq)) * (Number(seq) - 1));
        }
      });
    }
  }
});

describe('quantc eval', () => {
  test('prints the perplexity on its own line; JSON for tools', async () => {
    const dir = await modelWithTokenizer('llama', 'W4A16');
    const io = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '16'], io)).toBe(0);
    const line = io.out.join('').split('\n').find((l) => l.startsWith('perplexity: '));
    expect(Number(line!.slice('perplexity: '.length))).toBeCloseTo(refs.perplexity.W4A16!['16']!, 3);
    const json = memoryIo(dir);
    expect(await main(['eval', '--model', dir, '--data', TEXT, '--seq-len', '32', '--batch-size', '3', '--format', 'json'], json)).toBe(0);
    const parsed = JSON.parse(json.out.join('')) as { perplexity: number; windows: number; seqLen: number };
    expect(parsed.seqLen).toBe(32);
    expect(parsed.windows).toBe(Math.floor(refs.text_ids.length / 32));
    expect(Math.abs(parsed.perplexity - refs.perplexity.W4A16!['32']!) / parsed.perplexity).toBeLessThan(1e-5);
  });

  test('--coverage writes the tokens routed to each expert of each MoE layer', async () => {
    const dir = await modelWithTokenizer('qwen3_moe');
    const io = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--coverage', 'coverage.json'], io)).toBe(0);
    const tokens = Math.floor(refs.text_ids.length / 32) * 32;
    expect(io.out.join('')).toMatch(new RegExp(`\n {2}experts {6}2 MoE layers; least routed: layer \\d expert \\d \\(\\d+ of ${tokens} tokens\\)\n`));
    const coverage = JSON.parse(await readFile(join(dir, 'coverage.json'), 'utf8')) as { formatVersion: number; tokens: number; layers: { layer: number; routed: number[]; seen: number[] }[] };
    expect(coverage.formatVersion).toBe(1);
    expect(coverage.tokens).toBe(tokens);
    expect(coverage.layers.map((l) => l.layer)).toEqual([0, 1]);
    for (const l of coverage.layers) {
      expect(l.routed).toHaveLength(4);
      expect(l.routed.reduce((a, b) => a + b, 0)).toBe(2 * tokens);
      expect(l.seen).toEqual([tokens, tokens, tokens, tokens]);
    }
  });

  test('--coverage FILE.html writes a self-contained heat map', async () => {
    const dir = await modelWithTokenizer('glm4_moe_lite');
    const io = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32', '--coverage', 'coverage.html'], io)).toBe(0);
    const html = await readFile(join(dir, 'coverage.html'), 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/<script|src=|href=/);
    expect(html.match(/<tr><th>\d+<\/th>/g)).toEqual(['<tr><th>1</th>']);
    expect(html.match(/<td /g)).toHaveLength(4);
    expect(html).toContain('title="layer 1, expert 0: ');
  });

  test('progress goes to stderr: a redrawn line on a terminal, cleared at the end; a line per layer otherwise', async () => {
    const dir = await modelWithTokenizer('llama');
    const tty = { ...memoryIo(dir), isTty: true };
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32'], tty)).toBe(0);
    expect(tty.err.join('')).toMatch(/^\r\x1b\[Kevaluating layer 1\/2\r\x1b\[Kevaluating layer 2\/2, about \d+ s left\r\x1b\[K$/);
    const plain = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', TEXT, '--seq-len', '32'], plain)).toBe(0);
    expect(plain.err.join('')).toMatch(/^evaluating layer 1\/2\nevaluating layer 2\/2, about \d+ s left\n$/);
  });

  test('JSON Lines data: the text fields joined with blank lines', async () => {
    const dir = await modelWithTokenizer('llama');
    await writeFile(join(dir, 'data.jsonl'), `${JSON.stringify({ text: 'the river ran past the mill' })}\n\n${JSON.stringify({ text: 'and the bell rang' })}\n`);
    const io = memoryIo(dir);
    expect(await main(['eval', '--model', '.', '--data', 'data.jsonl', '--seq-len', '4', '--format', 'json'], io)).toBe(0);
    const tok = await loadTokenizer(dir);
    const ids = tok.encode('the river ran past the mill\n\nand the bell rang');
    expect((JSON.parse(io.out.join('')) as { tokens: number }).tokens).toBe(Math.floor(ids.length / 4) * 4);
  });

  test('usage errors exit 2 with one line', async () => {
    const dir = await modelWithTokenizer('llama');
    for (const [args, message] of [
      [['--data', TEXT], 'quantc: eval: --model DIR is required.\n'],
      [['--model', dir], 'quantc: eval: --data FILE is required.\n'],
      [['--model', dir, '--data', 'missing.txt'], `quantc: eval: cannot read ${join(dir, 'missing.txt')}: it does not exist\n`],
      [['--model', dir, '--data', TEXT, '--seq-len', '0'], 'quantc: eval: --seq-len must be a positive integer, not "0".\n'],
      [['--model', join(dir, 'nope'), '--data', TEXT], `quantc: eval: ${join(dir, 'nope')} has no config.json.\n`],
    ] as const) {
      const io = memoryIo(dir);
      expect(await main(['eval', ...args], io)).toBe(2);
      expect(io.err.join('')).toBe(message);
    }
  });

  test('model and data problems are diagnostics (exit 1)', async () => {
    const dir = await modelWithTokenizer('llama');
    const short = memoryIo(dir);
    expect(await main(['eval', '--model', dir, '--data', TEXT, '--seq-len', '100000'], short)).toBe(1);
    expect(short.err.join('')).toContain('error eval-data-too-short:');

    const other = await mkdtemp(join(tmpdir(), 'quantc-eval-'));
    await writeFile(join(other, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 8 }));
    await writeFile(join(other, 'tokenizer.json'), await readFile(join(CALIBRATION, 'tokenizer.json')));
    const io = memoryIo(other);
    expect(await main(['eval', '--model', other, '--data', TEXT], io)).toBe(1);
    expect(io.err.join('')).toMatch(/error forward-unsupported-model: model_type "gpt2" cannot be run by the forward executor yet \(supported: .*llama/);

    const noTok = await mkdtemp(join(tmpdir(), 'quantc-eval-'));
    await writeFile(join(noTok, 'config.json'), '{}');
    const io2 = memoryIo(noTok);
    expect(await main(['eval', '--model', noTok, '--data', TEXT], io2)).toBe(1);
    expect(io2.err.join('')).toContain('error eval-no-tokenizer:');
  });
});
