import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { CALIBRATION, modelWithTokenizer } from './calibrate-refs.js';
import { parseSafetensors } from './execute/fixtures.js';
import { memoryIo } from './memory-io.js';


const TEXT = join(CALIBRATION, 'text.txt');

async function workspace(recipe: string): Promise<string> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-apply-cal-'));
  await writeFile(join(cwd, 'recipe.yaml'), recipe);
  return cwd;
}

const LLAMA_FP8 = 'quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      targets: [Linear]\n      scheme: FP8\n      ignore: [lm_head]\n';

describe('quantc apply with calibration', () => {
  test('calibrates on --data and says how much data it used', async () => {
    const cwd = await workspace(LLAMA_FP8);
    const io = memoryIo(cwd);
    expect(await main(['apply', 'recipe.yaml', '--model', await modelWithTokenizer('llama'), '--out', 'out', '--data', TEXT, '--seq-len', '32', '--batch-size', '2'], io)).toBe(0);
    expect(io.err.join('')).toContain(`Calibrating on 9 samples of ${TEXT}\n`);
    const out = io.out.join('');
    expect(out).toContain(`  calibration  9 samples (the data gives 9 of the 512 requested), 288 tokens (--seq-len 32, --batch-size 2) from ${TEXT}, `);
    expect(out).toContain('  coverage     dense model, 288 tokens (no experts)\n');
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    expect([...tensors.keys()].filter((k) => k.endsWith('.input_scale'))).toHaveLength(14);
  });

  test('without --data, calibrates on the embedded text and says so', async () => {
    const cwd = await workspace(LLAMA_FP8.replace('FP8', 'NVFP4'));
    const io = memoryIo(cwd);
    expect(await main(['apply', 'recipe.yaml', '--model', await modelWithTokenizer('llama'), '--out', 'out', '--samples', '4'], io)).toBe(0);
    expect(io.err.join('')).toContain('Calibrating on the embedded calibration text (no --data given): 4 samples\n');
    expect(io.out.join('')).toMatch(/ {2}calibration {2}4 samples, 1024 tokens \(--seq-len 256, --batch-size 1\) from the embedded calibration text, [\d.]+ s \(\d+ tokens\/s on cpu\)\n/);
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    expect([...tensors.keys()].filter((k) => k.endsWith('.input_global_scale'))).toHaveLength(14);
  });

  test('a .jsonl file gives one sample per record', async () => {
    const cwd = await workspace(LLAMA_FP8);
    const text = await readFile(TEXT, 'utf8');
    await writeFile(join(cwd, 'data.jsonl'), `${JSON.stringify({ text: text.slice(0, 400) })}\n\n${JSON.stringify({ text: text.slice(400, 900) })}\n${JSON.stringify({ text: '' })}\n`);
    const io = memoryIo(cwd);
    expect(await main(['apply', 'recipe.yaml', '--model', await modelWithTokenizer('llama'), '--out', 'out', '--data', 'data.jsonl', '--seq-len', '64'], io)).toBe(0);
    expect(io.out.join('')).toContain('  calibration  2 samples (the data gives 2 of the 512 requested), 128 tokens (--seq-len 64, --batch-size 1) from data.jsonl, ');
  });

  test('an unreadable or malformed --data file exits 2 with one line, writing nothing', async () => {
    const model = await modelWithTokenizer('llama');
    for (const [data, message] of [
      ['missing.txt', 'quantc: apply: --data: cannot read '],
      ['bad.jsonl', 'quantc: apply: --data: '],
    ] as const) {
      const cwd = await workspace(LLAMA_FP8);
      await writeFile(join(cwd, 'bad.jsonl'), '{"text": "fine"}\n{"txt": "no text field"}\n');
      const io = memoryIo(cwd);
      expect(await main(['apply', 'recipe.yaml', '--model', model, '--out', 'out', '--data', data], io)).toBe(2);
      const err = io.err.join('');
      expect(err.startsWith(message), err).toBe(true);
      expect(err.trimEnd().split('\n')).toHaveLength(1);
      if (data === 'bad.jsonl') expect(err).toContain('bad.jsonl:2: a record needs a "text" string, "messages", or "prompt" and "completion"');
      expect((await readdir(cwd)).sort()).toEqual(['bad.jsonl', 'recipe.yaml']);
    }
  });

  test('data shorter than one window is an error (exit 1), nothing written', async () => {
    const cwd = await workspace(LLAMA_FP8);
    await writeFile(join(cwd, 'short.txt'), 'A few words only.');
    const io = memoryIo(cwd);
    expect(await main(['apply', 'recipe.yaml', '--model', await modelWithTokenizer('llama'), '--out', 'out', '--data', 'short.txt'], io)).toBe(1);
    expect(io.err.join('')).toContain('error apply-data-too-short: short.txt has fewer than one window of --seq-len 256 tokens; calibration needs at least one sample.');
    expect((await readdir(cwd)).sort()).toEqual(['recipe.yaml', 'short.txt']);
  });

  test('a model folder without tokenizer.json exits 2 with one line', async () => {
    const { unpackModel, DATAFREE } = await import('./execute/fixtures.js');
    const model = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const cwd = await workspace(LLAMA_FP8);
    const io = memoryIo(cwd);
    expect(await main(['apply', 'recipe.yaml', '--model', model, '--out', 'out'], io)).toBe(2);
    expect(io.err.join('')).toBe(`quantc: apply: cannot read ${join(model, 'tokenizer.json')}: no such file; calibration tokenizes its data with the model's tokenizer.json.\n`);
  });

  test('a saved plan of a calibrated recipe runs', async () => {
    const cwd = await workspace(LLAMA_FP8);
    const model = await modelWithTokenizer('llama');
    expect(await main(['plan', 'recipe.yaml', '--model', model, '--save', 'plan.json'], memoryIo(cwd))).toBe(0);
    const io = memoryIo(cwd);
    expect(await main(['apply', 'plan.json', '--out', 'out', '--data', TEXT, '--seq-len', '32'], io)).toBe(0);
    expect(io.out.join('')).toContain('  calibration  9 samples');
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    expect(tensors.has('model.layers.1.mlp.down_proj.input_scale')).toBe(true);
  });

  test('activation arguments apply cannot calibrate are refused before anything runs', async () => {
    const group = '{targets: [Linear], weights: {num_bits: 8, type: int, strategy: channel}, input_activations: {num_bits: 8, type: int, strategy: group, group_size: 128, dynamic: false}}';
    const cwd = await workspace(`quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      ignore: [lm_head]\n      config_groups: {group_0: ${group}}\n`);
    const io = memoryIo(cwd);
    expect(await main(['apply', 'recipe.yaml', '--model', await modelWithTokenizer('llama'), '--out', 'out'], io)).toBe(1);
    expect(io.err.join('')).toContain('error apply-unsupported: group_0 input_activations: static input activations with strategy "group" are not supported by apply');
    expect(await readdir(cwd)).toEqual(['recipe.yaml']);
  });

  test('algorithms apply does not run yet stay refused', async () => {
    const cwd = await workspace('quant_stage:\n  quant_modifiers:\n    SpinQuantModifier: {}\n    QuantizationModifier: {targets: [Linear], scheme: W4A16_ASYM, ignore: [lm_head]}\n');
    const io = memoryIo(cwd);
    expect(await main(['apply', 'recipe.yaml', '--model', await modelWithTokenizer('llama'), '--out', 'out', '--data', TEXT], io)).toBe(1);
    expect(io.err.join('')).toContain('error apply-unsupported: SpinQuantModifier is not supported by apply');
  });
});

/** NVFP4 on the tiny qwen3_moe, experts calibrated on routed tokens only, with an unreachable threshold. */
function moeRecipe(policy: string): string {
  return [
    'quantc:',
    '  moe: {calibrate_all_experts: false, min_expert_tokens: 150, on_low_coverage: ' + policy + '}',
    'quant_stage:',
    '  quant_modifiers:',
    '    QuantizationModifier:',
    '      targets: [Linear]',
    '      scheme: NVFP4',
    "      ignore: [lm_head, 're:.*mlp.gate$']",
    '',
  ].join('\n');
}

describe('expert coverage policy (qwen3_moe, routed tokens, min_expert_tokens 150 of 288 tokens)', () => {
  const args = (model: string) => ['apply', 'recipe.yaml', '--model', model, '--out', 'out', '--data', TEXT, '--seq-len', '32', '--coverage', 'coverage.json'];

  test('error: stops before writing anything and names the experts and the setting', async () => {
    const cwd = await workspace(moeRecipe('error'));
    const io = memoryIo(cwd);
    expect(await main(args(await modelWithTokenizer('qwen3_moe')), io)).toBe(1);
    const err = io.err.join('');
    expect(err).toMatch(/error apply-expert-coverage: \d+ experts saw fewer than min_expert_tokens = 150 calibration tokens: layer \d expert \d \(\d+ tokens\)/);
    expect(err).toContain('set calibrate_all_experts = true, lower min_expert_tokens, or set on_low_coverage to "warning" or "fallback"');
    expect((await readdir(cwd)).sort()).toEqual(['recipe.yaml']);
  });

  test('warning: reports the experts and keeps their statistics', async () => {
    const cwd = await workspace(moeRecipe('warning'));
    const io = memoryIo(cwd);
    expect(await main(args(await modelWithTokenizer('qwen3_moe')), io)).toBe(0);
    expect(io.err.join('')).toMatch(/warning apply-expert-coverage-low: \d+ experts saw fewer than min_expert_tokens = 150 calibration tokens and keep their statistics: layer/);
    expect(io.out.join('')).toMatch(/ {2}coverage {5}8 experts in 2 MoE layers \(experts see routed tokens\); least: layer \d expert \d, \d+ of 288 tokens; \d+ below min_expert_tokens 150\n/);
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    expect([...tensors.keys()].filter((k) => /experts\.\d+\..*input_global_scale$/.test(k))).toHaveLength(2 * 4 * 3);
    const config = JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: { config_groups: object } };
    expect(Object.keys(config.quantization_config.config_groups)).toEqual(['group_0']);
    const coverage = JSON.parse(await readFile(join(cwd, 'coverage.json'), 'utf8')) as { tokens: number; calibrateAllExperts: boolean; layers: { routed: number[] }[] };
    expect(coverage.tokens).toBe(288);
    expect(coverage.calibrateAllExperts).toBe(false);
    expect(coverage.layers.map((l) => l.routed.reduce((a, b) => a + b, 0))).toEqual([576, 576]);
  });

  test('warning: an expert that saw no token has no statistics and falls back, and the warning says so', async () => {
    const cwd = await workspace(moeRecipe('warning'));
    const io = memoryIo(cwd);
    const argv = args(await modelWithTokenizer('qwen3_moe')).map((a) => (a === '32' ? '2' : a));
    expect(await main([...argv, '--samples', '1'], io)).toBe(0);
    const err = io.err.join('');
    expect(err).toMatch(/ (\d+) of them saw no token and (is|are) quantized data-free \(weights only\)\./);
    const coverage = JSON.parse(await readFile(join(cwd, 'coverage.json'), 'utf8')) as { layers: { layer: number; seen: number[] }[] };
    const empty = coverage.layers.flatMap((l) => l.seen.flatMap((n, e) => (n === 0 ? [`model.layers.${l.layer}.mlp.experts.${e}.`] : [])));
    expect(empty.length).toBeGreaterThan(0);
    const config = JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: { config_groups: Record<string, { targets: string[] }> } };
    expect(config.quantization_config.config_groups.group_1!.targets).toEqual(empty.flatMap((p) => ['down_proj', 'gate_proj', 'up_proj'].map((proj) => `${p}${proj}`)).sort());
  });

  test('fallback: under-covered experts are quantized data-free in an extra config group', async () => {
    const cwd = await workspace(moeRecipe('fallback'));
    const io = memoryIo(cwd);
    expect(await main(args(await modelWithTokenizer('qwen3_moe')), io)).toBe(0);
    expect(io.err.join('')).toMatch(/warning apply-expert-fallback: (\d+) experts saw fewer than min_expert_tokens = 150 calibration tokens and are quantized data-free \(weights only, \d+ modules in an extra config group\)/);
    const coverage = JSON.parse(await readFile(join(cwd, 'coverage.json'), 'utf8')) as { layers: { layer: number; seen: number[] }[] };
    const low = coverage.layers.flatMap((l) => l.seen.flatMap((n, e) => (n < 150 ? [`model.layers.${l.layer}.mlp.experts.${e}.`] : [])));
    expect(low.length).toBeGreaterThan(0);
    const lowModules = low.flatMap((p) => ['down_proj', 'gate_proj', 'up_proj'].map((proj) => `${p}${proj}`)).sort();
    const config = JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as {
      quantization_config: { config_groups: Record<string, { targets: string[]; input_activations: unknown; weights: unknown }> };
    };
    const groups = config.quantization_config.config_groups;
    expect(Object.keys(groups)).toEqual(['group_0', 'group_1']);
    expect(groups.group_1!.targets).toEqual(lowModules);
    expect(groups.group_1!.input_activations).toBeNull();
    expect(groups.group_1!.weights).toEqual(groups.group_0!.weights);
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    for (const m of lowModules) {
      expect(tensors.has(`${m}.input_global_scale`), m).toBe(false);
      expect(tensors.has(`${m}.weight_packed`), m).toBe(true);
    }
    expect(tensors.has('model.layers.0.self_attn.q_proj.input_global_scale')).toBe(true);
    expect(io.out.join('')).toContain(`; ${lowModules.length} modules quantized data-free\n`);
    expect(existsSync(join(cwd, 'coverage.json'))).toBe(true);
  });
});

describe('the diagnostic environment variables', () => {
  test('an invalid QUANTC_ORT_PROFILE_MATCH is said as itself, and nothing is written', async () => {
    const cwd = await workspace(LLAMA_FP8);
    const io = memoryIo(cwd);
    process.env.QUANTC_ORT_PROFILE = join(cwd, 'trace', 'p');
    process.env.QUANTC_ORT_PROFILE_MATCH = 'layers_(';
    try {
      expect(await main(['apply', 'recipe.yaml', '--model', await modelWithTokenizer('llama'), '--out', 'out', '--data', TEXT, '--seq-len', '32'], io)).toBe(1);
    } finally {
      delete process.env.QUANTC_ORT_PROFILE;
      delete process.env.QUANTC_ORT_PROFILE_MATCH;
    }
    expect(io.err.join('')).toMatch(/error apply-failed: QUANTC_ORT_PROFILE_MATCH is not a regular expression \(.*\)\n/);
    expect((await readdir(cwd)).sort()).toEqual(['recipe.yaml']);
  });

  test('a QUANTC_ORT_SESSION_CONFIG entry that is not key=value is said as itself, and nothing is written', async () => {
    const cwd = await workspace(LLAMA_FP8);
    const io = memoryIo(cwd);
    process.env.QUANTC_ORT_SESSION_CONFIG = 'use_device_allocator_for_initializers=1,disable_prepacking';
    try {
      expect(await main(['apply', 'recipe.yaml', '--model', await modelWithTokenizer('llama'), '--out', 'out', '--data', TEXT, '--seq-len', '32'], io)).toBe(1);
    } finally {
      delete process.env.QUANTC_ORT_SESSION_CONFIG;
    }
    expect(io.err.join('')).toContain('error apply-failed: QUANTC_ORT_SESSION_CONFIG: "disable_prepacking" is not key=value\n');
    expect((await readdir(cwd)).sort()).toEqual(['recipe.yaml']);
  });
});
