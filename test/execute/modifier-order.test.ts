/**
 * A recipe's modifiers run in recipe order, each on the model the ones
 * before it left (llm-compressor's independent pipeline): its non-uniform
 * example (GPTQ on attention, then AWQ and round-to-nearest on the MLP)
 * against llm-compressor's own output (test/fixtures/scripts/make_order_refs.py).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { CALIBRATION } from '../calibrate-refs.js';
import { expectCheckpoint, loadRef, type CheckpointRef } from './checkpoint-refs.js';
import { parseSafetensors, unpackModel } from './fixtures.js';
import { memoryIo } from '../memory-io.js';

interface OrderRef extends CheckpointRef {
  readonly source: string;
  readonly recipe: string;
}

const FIXTURES = join(CALIBRATION, '..');

async function run(ref: OrderRef, recipe: string): Promise<{ code: number; err: string; out: string }> {
  const dir = await unpackModel(join(FIXTURES, ref.source));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await writeFile(join(dir, f), await readFile(join(CALIBRATION, f)));
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-order-'));
  await writeFile(join(cwd, 'recipe.yaml'), recipe);
  const io = memoryIo(cwd);
  const code = await main(['apply', 'recipe.yaml', '--model', dir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'], io);
  return { code, err: io.err.join(''), out: join(cwd, 'out') };
}

const load = (name = 'non_uniform'): Promise<OrderRef> => loadRef<OrderRef>(join(FIXTURES, 'order', `${name}.json.gz`));
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('modifiers run in recipe order', () => {
  test("llm-compressor's non-uniform example: GPTQ, then AWQ on the GPTQ-quantized model, then RTN, byte for byte", async () => {
    const ref = await load();
    const { code, err, out } = await run(ref, ref.recipe);
    expect(code, err).toBe(0);
    // GPTQ's pass runs before AWQ's.
    expect(err.indexOf('gptq layer 2/2')).toBeLessThan(err.indexOf('awq layer 1/2'));
    await expectCheckpoint(ref, out);
  });

  for (const [name, what] of [
    ['kv_then_gptq', 'kv-cache scales in the QuantizationModifier\'s own pass, before GPTQ'],
    ['fp8_then_gptq', 'FP8 input scales in the QuantizationModifier\'s own pass, before GPTQ'],
    ['gptq_then_fp8', 'FP8 input scales in the QuantizationModifier\'s own pass, over the model GPTQ quantized'],
  ] as const) {
    test(`${name}: ${what}; every tensor but GPTQ's codes byte for byte`, async () => {
      const ref = await load(name);
      const { code, err, out } = await run(ref, ref.recipe);
      expect(code, err).toBe(0);
      const calibrating = err.indexOf('calibrating layer 1/');
      expect(calibrating, err).toBeGreaterThanOrEqual(0);
      expect(calibrating < err.indexOf('gptq layer 1/')).toBe(name !== 'gptq_then_fp8');
      await expectCheckpoint(ref, out, (n) => n.endsWith('.weight_packed'));
    });
  }

  test('a kv_cache_scheme alone quantizes the kv cache of an unquantized model, byte for byte', async () => {
    const ref = await load('kv_only');
    const { code, err, out } = await run(ref, ref.recipe);
    expect(code, err).toBe(0);
    expect(Object.keys(ref.tensors).some((n) => n.endsWith('.k_scale'))).toBe(true);
    await expectCheckpoint(ref, out);
  });

  test("a later kv-cache-only QuantizationModifier overwrites the earlier modifier's schemes with its empty one, as compressed-tensors does, and says so", async () => {
    const ref = await load('fp8_then_kv');
    const { code, err, out } = await run(ref, ref.recipe);
    expect(code, err).toBe(0);
    expect(err).toContain('warning quantization-scheme-reset: QuantizationModifier has no quantization arguments of its own, yet a config (a kv_cache_scheme), so compressed-tensors attaches its empty scheme to every module its targets match: 14 modules an earlier modifier gave a scheme');
    // The Linear weights stay bf16, as llm-compressor writes them.
    expect(ref.tensors['model.layers.0.self_attn.q_proj.weight']!.dtype).toBe('bfloat16');
    await expectCheckpoint(ref, out);
  });

  test('a GPTQModifier with an ignore list but no scheme overwrites the earlier schemes too: nothing is left to solve', async () => {
    const ref = await load('fp8_then_kv');
    const recipe = ref.recipe.replace(/    QuantizationModifier:\n      kv_cache_scheme: .*\n$/, '    GPTQModifier:\n      ignore: [lm_head]\n');
    expect(recipe).toContain('GPTQModifier');
    const { code, err } = await run(ref, recipe);
    expect(code).not.toBe(0);
    expect(err).toContain('warning quantization-scheme-reset: GPTQModifier has no quantization arguments of its own, yet a config (targets or an ignore list)');
    expect(err).toContain('error plan-nothing-quantized');
  });

  test('GPTQ then a kv-cache-only QuantizationModifier: GPTQ keeps no module, and apply stops as llm-compressor does', async () => {
    const ref = await load('kv_then_gptq');
    const [head, gptq] = ref.recipe.split('    GPTQModifier:\n');
    const kv = head!.split('    QuantizationModifier:\n')[1]!;
    const recipe = `default_stage:\n  default_modifiers:\n    GPTQModifier:\n${gptq}    QuantizationModifier:\n${kv}`;
    const { code, err } = await run(ref, recipe);
    expect(code).not.toBe(0);
    expect(err).toContain('warning quantization-scheme-reset');
    expect(err).toContain('error apply-unsupported: GPTQModifier finds no module to quantize');
  });

  test('the order matters: AWQ before GPTQ smooths the MLP differently', async () => {
    const ref = await load();
    const [head, rest] = ref.recipe.split('    AWQModifier:\n');
    const [awq, tail] = rest!.split('    QuantizationModifier:\n');
    const [top, gptq] = head!.split('    GPTQModifier:\n');
    const reordered = `${top}    AWQModifier:\n${awq}    GPTQModifier:\n${gptq}    QuantizationModifier:\n${tail}`;
    const { code, err, out } = await run(ref, reordered);
    expect(code, err).toBe(0);
    const got = parseSafetensors(new Uint8Array(await readFile(join(out, 'model.safetensors'))));
    const moved = Object.entries(ref.tensors).filter(([name, r]) => sha(got.get(name)!.bytes) !== r.sha256).map(([name]) => name);
    expect(moved.some((n) => /layers\.1\.mlp\./.test(n))).toBe(true);
  });

  test('a smoothing stage after GPTQ may not rescale what GPTQ solved, nor follow a round-to-nearest modifier', async () => {
    const ref = await load();
    const onAttention = ref.recipe.replace(/mappings:\n(?:.*\n)*?    QuantizationModifier:/, 'mappings:\n        - smooth_layer: "re:.*input_layernorm$"\n          balance_layers: ["re:.*q_proj$", "re:.*k_proj$", "re:.*v_proj$"]\n    QuantizationModifier:');
    const solved = await run(ref, onAttention);
    expect(solved.code).not.toBe(0);
    expect(solved.err).toContain('AWQModifier comes after GPTQModifier and would rescale model.layers.0.self_attn.q_proj, model.layers.0.self_attn.k_proj, model.layers.0.self_attn.v_proj and 3 more, whose weights GPTQ has already solved');
    // Round-to-nearest on attention in a stage of its own, before AWQ.
    const withoutGptq = ref.recipe.replace(/    GPTQModifier:\n(?: {6}.*\n)*/, '');
    const rtnFirst = `rtn_stage:\n  rtn_modifiers:\n    QuantizationModifier:\n      targets: ["re:.*self_attn\\\\.(k|q|o|v)_proj$"]\n      scheme: FP8_DYNAMIC\n${withoutGptq}`;
    const refused = await run(ref, rtnFirst);
    expect(refused.code).not.toBe(0);
    expect(refused.err).toContain('AWQModifier must come before the quantization modifiers other than GPTQModifier');
  });
});
