/**
 * Attention quantization, as llm-compressor's attention example runs it
 * (test/fixtures/scripts/make_attention_refs.py): a scheme on the attention
 * class with static FP8 input activations observes the query, key and value
 * states and saves q_scale / k_scale / v_scale with their zero points; the
 * Linear layers stay as they are (a Mixtral checkpoint of the original
 * layout comes back with transformers' expert names). Byte for byte.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { CALIBRATION } from '../calibrate-refs.js';
import { expectCheckpoint, loadRef, type CheckpointRef } from './checkpoint-refs.js';
import { unpackModel } from './fixtures.js';
import { memoryIo } from '../memory-io.js';

interface AttentionRef extends CheckpointRef {
  readonly source: string;
  readonly attention: string;
}

const FIXTURES = join(CALIBRATION, '..');

async function apply(source: string, attention: string): Promise<{ code: number; err: string; out: string }> {
  const dir = await unpackModel(join(FIXTURES, source));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await writeFile(join(dir, f), await readFile(join(CALIBRATION, f)));
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-attention-'));
  const group = { targets: [attention], input_activations: { num_bits: 8, type: 'float', strategy: 'tensor' } };
  await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify({ default_stage: { default_modifiers: { QuantizationModifier: { config_groups: { attention: group } } } } }, null, 1)}\n`);
  const io = memoryIo(cwd);
  const code = await main(['apply', 'recipe.yaml', '--model', dir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'], io);
  return { code, err: io.err.join(''), out: join(cwd, 'out') };
}

describe('attention quantization (query, key and value states)', () => {
  for (const model of ['llama', 'mixtral', 'qwen3']) {
    test(`${model}: the checkpoint is llm-compressor's byte for byte`, async () => {
      const ref = await loadRef<AttentionRef>(join(FIXTURES, 'calibrated', 'attention', `${model}.json.gz`));
      const { code, err, out } = await apply(ref.source, ref.attention);
      expect(code, err).toBe(0);
      expect(Object.keys(ref.tensors).filter((n) => n.endsWith('.q_scale')).length).toBeGreaterThan(0);
      await expectCheckpoint(ref, out);
    });
  }

  test("llm-compressor's per-head kv-cache example: one k_scale and v_scale per KV head, byte for byte", async () => {
    const ref = await loadRef<AttentionRef>(join(FIXTURES, 'calibrated', 'attention', 'kv_head.json.gz'));
    const dir = await unpackModel(join(FIXTURES, ref.source));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await writeFile(join(dir, f), await readFile(join(CALIBRATION, f)));
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-kv-head-'));
    const modifier = { targets: ['Linear'], scheme: 'FP8_DYNAMIC', ignore: ['lm_head'], kv_cache_scheme: { num_bits: 8, type: 'float', strategy: 'attn_head' } };
    await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify({ default_stage: { default_modifiers: { QuantizationModifier: modifier } } }, null, 1)}\n`);
    const io = memoryIo(cwd);
    const code = await main(['apply', 'recipe.yaml', '--model', dir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'], io);
    expect(code, io.err.join('')).toBe(0);
    expect(ref.tensors['model.layers.0.self_attn.k_scale']!.shape).toEqual([2, 1, 1]);
    await expectCheckpoint(ref, join(cwd, 'out'));
  });

  test("an attention without llama-style query states stops with the reason", async () => {
    const { code, err } = await apply('calibration/models/deepseek_v3', 'DeepseekV3Attention');
    expect(code).not.toBe(0);
    expect(err).toContain("error apply-failed: model.layers.0.self_attn: attention quantization observes the query states of llama-style attention");
  });
});
