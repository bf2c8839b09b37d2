/**
 * The README's worked example, command for command: a model id from a
 * Hugging Face cache (made from test fixtures), offline, planned, applied
 * with a chat dataset shuffled as llm-compressor's examples shuffle it,
 * then evaluated, also as served and against the original. Also the one-line errors of bad calibration input.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { modelWithTokenizer } from './calibrate-refs.js';
import { memoryIo } from './memory-io.js';

const HUB = resolve('test/fixtures/hub');
const README_RECIPE = /```\n(recipe "tiny-chat-fp8"[\s\S]*?)```/;

/** Temporary folders made by this file, removed at the end. */
const made: string[] = [];
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

async function example(): Promise<{ cwd: string; env: Record<string, string> }> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-readme-'));
  made.push(cwd);
  execFileSync(process.execPath, [resolve('test/fixtures/scripts/make_hf_cache.mjs'), join(cwd, 'hf-cache')]);
  const recipe = README_RECIPE.exec(readFileSync('README.md', 'utf8'))?.[1];
  expect(recipe).toBeDefined();
  await writeFile(join(cwd, 'tiny-chat-fp8.qr'), recipe!);
  return { cwd, env: { HF_HUB_CACHE: join(cwd, 'hf-cache'), HF_HUB_OFFLINE: '1' } };
}

async function run(cwd: string, env: Record<string, string>, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = { ...memoryIo(cwd), env };
  const code = await main(argv, io);
  return { code, out: io.out.join(''), err: io.err.join('') };
}

describe('README: from the Hugging Face cache through apply with a chat dataset to eval', () => {
  test('runs offline on the tiny chat model', async () => {
    const { cwd, env } = await example();
    const plan = await run(cwd, env, 'plan', 'tiny-chat-fp8.qr', '--model', 'quantc-test/tiny-chat');
    expect(plan.code).toBe(0);
    expect(plan.out).toContain('14 modules get FP8 (float-quantized)');
    const data = join(HUB, 'data', 'chat.jsonl');
    const apply = await run(cwd, env, 'apply', 'tiny-chat-fp8.qr', '--model', 'quantc-test/tiny-chat', '--data', data, '--shuffle', '--seed', '42', '--seq-len', '64', '--out', 'tiny-chat-fp8');
    expect(apply.code).toBe(0);
    expect(apply.err).toMatch(/^Calibrating on 8 samples of .*chat\.jsonl \(shuffled with seed 42; conversations rendered with .*\/snapshots\/[0-9a-f]{40}\/chat_template\.jinja\)$/m);
    // The tokenizer and template travel with the checkpoint, as llm-compressor saves the processor.
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) expect(existsSync(join(cwd, 'tiny-chat-fp8', f))).toBe(true);
    const evaluated = await run(cwd, env, 'eval', '--model', 'tiny-chat-fp8', '--data', join(HUB, 'data', 'text.jsonl'), '--seq-len', '16');
    expect(evaluated.code).toBe(0);
    expect(evaluated.out).toMatch(/^perplexity: [\d.]+\n/);
    // The served model (static FP8 inputs) against the original from the cache, on the same windows.
    const args = ['eval', '--model', 'tiny-chat-fp8', '--data', join(HUB, 'data', 'text.jsonl'), '--seq-len', '16', '--simulate', 'activations', '--baseline', 'quantc-test/tiny-chat'];
    const compared = await run(cwd, env, ...args, '-q');
    expect(compared.code).toBe(0);
    expect(compared.out).toMatch(/^perplexity: [\d.]+ vs [\d.]+ baseline \(ratio [\d.]+\)\n/);
    expect(compared.out).toContain('\n  quantized    weights, activations (14 Linear inputs: FP8 static per-tensor)\n');
    expect(compared.out).toMatch(/\n {2}layer drift {2}0: \S+, 1: \S+ \(relative L2/);
    const json = JSON.parse((await run(cwd, env, ...args, '--format', 'json')).out) as { perplexity: number; baseline: { perplexity: number }; ratio: number };
    const original = JSON.parse((await run(cwd, env, 'eval', '--model', 'quantc-test/tiny-chat', '--data', join(HUB, 'data', 'text.jsonl'), '--seq-len', '16', '--format', 'json')).out) as { perplexity: number };
    expect(json.baseline.perplexity).toBe(original.perplexity);
    expect(json.ratio).toBeCloseTo(json.perplexity / original.perplexity, 12);
  });

  test('bad calibration input is one line and exit 2', async () => {
    const { cwd, env } = await example();
    const args = ['apply', 'tiny-chat-fp8.qr', '--model', 'quantc-test/tiny-chat', '--out', 'out'];
    const seedAlone = await run(cwd, env, ...args, '--seed', '3');
    expect([seedAlone.code, seedAlone.err]).toEqual([2, 'quantc: apply: --seed is the seed of --shuffle; add --shuffle.\n']);
    await writeFile(join(cwd, 'broken.parquet'), 'not parquet');
    const parquet = await run(cwd, env, ...args, '--data', 'broken.parquet');
    expect(parquet.code).toBe(2);
    expect(parquet.err).toMatch(/^quantc: apply: --data: .*broken\.parquet is not a Parquet file quantc can read \(.*\)\n$/);
    // A model without a chat template cannot calibrate on conversations.
    const llama = await modelWithTokenizer('llama');
    const noTemplate = await run(cwd, {}, 'apply', 'tiny-chat-fp8.qr', '--model', llama, '--out', 'out', '--data', join(HUB, 'data', 'chat.jsonl'));
    expect(noTemplate.code).toBe(2);
    expect(noTemplate.err).toContain(`quantc: apply: --data: ${join(HUB, 'data', 'chat.jsonl')} holds conversations ("messages"), but the model has no chat template to render them (chat_template.jinja, or "chat_template" in tokenizer_config.json).\n`);
  });
});
