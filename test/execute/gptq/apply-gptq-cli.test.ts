/**
 * `quantc apply` with GPTQModifier recipes end to end on the tiny models:
 * what the summary and progress say, what is written, and the refusals.
 * Fidelity against llm-compressor is in gptq-fidelity.test.ts.
 */
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { CALIBRATION, modelWithTokenizer } from '../../calibrate-refs.js';
import { parseSafetensors } from '../fixtures.js';
import { memoryIo } from '../../memory-io.js';


const TEXT = join(CALIBRATION, 'text.txt');

function gptqRecipe(scheme: string, ignore: string, extra = ''): string {
  return `quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      scheme: ${scheme}\n      ignore: ${ignore}\n${extra}`;
}

async function run(model: string, recipe: string, args: string[] = []): Promise<{ code: number; io: ReturnType<typeof memoryIo>; cwd: string }> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-gptq-'));
  await writeFile(join(cwd, 'recipe.yaml'), recipe);
  const io = memoryIo(cwd);
  const code = await main(['apply', 'recipe.yaml', '--model', await modelWithTokenizer(model), '--out', 'out', '--data', TEXT, '--seq-len', '32', ...args], io);
  return { code, io, cwd };
}

describe('quantc apply with GPTQ', () => {
  test('quantizes every decoder Linear, reports the run and writes what the RTN pass writes for the scheme', async () => {
    const { code, io, cwd } = await run('llama', gptqRecipe('W4A16', '[lm_head]'));
    expect(code).toBe(0);
    const err = io.err.join('');
    expect(err).toContain('gptq layer 1/2: statistics ');
    expect(err).toContain('gptq layer 2/2: ');
    const out = io.out.join('');
    expect(out).toMatch(/ {2}gptq {9}14 modules in 2 layers from 8 Hessians \(one per distinct input\); 14 solved, 0 rounded to nearest after a failed Cholesky, 0 by the coverage policy; block_size 128, dampening_frac 0.01; total loss [\d.e+-]+; /);
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    expect([...tensors.keys()].filter((k) => k.endsWith('.weight_packed'))).toHaveLength(14);
    expect([...tensors.keys()].some((k) => k.endsWith('weight_g_idx'))).toBe(false);
    const config = JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: { config_groups: { group_0: { weights: { actorder: string } } } } };
    expect(config.quantization_config.config_groups.group_0.weights.actorder).toBe('static');
    expect(await readFile(join(cwd, 'out', 'recipe.yaml'), 'utf8')).toContain('GPTQModifier');
  });

  test('group activation ordering writes weight_g_idx, and eval reads the checkpoint back', async () => {
    const { code, cwd } = await run('llama', gptqRecipe('W4A16', '[lm_head]', '      actorder: group\n'));
    expect(code).toBe(0);
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    const gIdx = tensors.get('model.layers.0.mlp.down_proj.weight_g_idx')!;
    expect(gIdx.dtype).toBe('I32');
    expect(gIdx.shape).toEqual([256]);
    const groups = new Int32Array(gIdx.bytes.slice().buffer);
    expect([0, 1].map((g) => groups.filter((x) => x === g).length)).toEqual([128, 128]);
    const io = memoryIo(cwd);
    expect(await main(['eval', '--model', join(cwd, 'out'), '--data', TEXT, '--seq-len', '32'], io)).toBe(0);
    expect(io.out.join('')).toMatch(/perplexity/);
  });

  test('MoE: one Hessian serves every expert gate/up when all experts see all tokens', async () => {
    const all = await run('qwen3_moe', gptqRecipe('W4A16', '[lm_head, "re:.*mlp.gate$"]'));
    expect(all.code).toBe(0);
    // Per layer: q/k/v, o, the experts' shared gate/up, one down per expert (4).
    expect(all.io.out.join('')).toContain('32 modules in 2 layers from 14 Hessians');
    const routed = await run('qwen3_moe', `quantc:\n  moe:\n    calibrate_all_experts: false\n${gptqRecipe('W4A16', '[lm_head, "re:.*mlp.gate$"]')}`);
    expect(routed.code, routed.io.err.join('')).toBe(0);
    expect(routed.io.out.join('')).toContain('32 modules in 2 layers from 20 Hessians');
  });

  test('--format json reports every module with its method and loss; plan warnings are shown, and --fail-on warning stops before running', async () => {
    const recipe = gptqRecipe('W4A16', '[lm_head, "re:.*mlp.gate$"]');
    const { code, io } = await run('qwen3_moe', recipe, ['--format', 'json']);
    expect(code).toBe(0);
    // The router ignore entry matches nothing quantizable: a plan warning, shown before the run.
    expect(io.err.join('')).toContain('warning ignore-without-effect:');
    const report = JSON.parse(io.out.join('')) as { quantized: number; gptq: { hessians: number; modules: { module: string; method: string; loss: number; samples: number }[]; fallbacks: unknown[] }; diagnostics: { code: string }[] };
    expect(report.quantized).toBe(32);
    expect(report.gptq.hessians).toBe(14);
    expect(report.gptq.modules).toHaveLength(32);
    expect(report.gptq.modules.every((m) => m.method === 'gptq' && m.loss > 0 && m.samples === 9)).toBe(true);
    expect(report.gptq.fallbacks).toEqual([]);
    expect(report.diagnostics.map((d) => d.code)).toEqual(['ignore-without-effect']);
    const strict = await run('qwen3_moe', recipe, ['--fail-on', 'warning']);
    expect(strict.code).toBe(1);
    expect(strict.io.err.join('')).not.toContain('Calibrating');
    expect(await readdir(strict.cwd)).toEqual(['recipe.yaml']);
  });

  test('a failed Cholesky is a gptq-fallback warning naming the module, counted in the summary and in --format json', async () => {
    // 8 calibration tokens and no dampening: every Hessian has rank ≤ 8 against inputs 128 and 256 wide.
    const recipe = gptqRecipe('W4A16', '[lm_head]', '      dampening_frac: 0.0\n');
    const text = await run('llama', recipe, ['--samples', '1', '--seq-len', '8']);
    expect(text.code, text.io.err.join('')).toBe(0);
    const summary = /(\d+) solved, (\d+) rounded to nearest after a failed Cholesky/.exec(text.io.out.join(''));
    expect(summary).not.toBeNull();
    const failed = Number(summary![2]);
    expect(failed).toBeGreaterThan(0);
    expect(Number(summary![1]) + failed).toBe(14);
    const warning = text.io.err.join('').split('\n').find((l) => l.includes('gptq-fallback'));
    expect(warning).toContain(`${failed} module${failed === 1 ? '' : 's'} could not be solved (the dampened Hessian is not positive definite)`);
    expect(warning).toMatch(/model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj/);
    const json = await run('llama', recipe, ['--samples', '1', '--seq-len', '8', '--format', 'json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.io.out.join('')) as { gptq: { modules: { module: string; method: string }[]; fallbacks: { module: string; method: string }[] }; diagnostics: { code: string; severity: string; message: string }[] };
    const fellBack = report.gptq.modules.filter((m) => m.method === 'rtn-fallback').map((m) => m.module);
    expect(fellBack).toHaveLength(failed);
    expect(report.gptq.fallbacks).toEqual(fellBack.map((module) => ({ module, method: 'rtn-fallback' })));
    const diagnostic = report.diagnostics.find((d) => d.code === 'gptq-fallback')!;
    expect(diagnostic.severity).toBe('warning');
    for (const m of fellBack.slice(0, 8)) expect(diagnostic.message).toContain(m);
  });

  test('MoE coverage: an expert under min_expert_tokens is rounded to nearest by the policy, named, counted, and never written as zeros', async () => {
    const moe = (policy: string, min: number) =>
      `quantc:\n  moe: {calibrate_all_experts: false, min_expert_tokens: ${min}, on_low_coverage: ${policy}}\n${gptqRecipe('W4A16', '[lm_head, "re:.*mlp.gate$"]')}`;
    type Report = { gptq: { modules: { module: string; method: string; samples: number }[]; fallbacks: { module: string; method: string }[] }; diagnostics: { code: string; message: string }[] };
    const nonzero = async (cwd: string, modules: readonly string[]) => {
      const out = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      for (const m of modules) expect(new Int32Array(out.get(`${m}.weight_packed`)!.bytes.slice().buffer).some((v) => v !== 0x88888888 && v !== 0), m).toBe(true);
    };
    // fallback: every expert under 150 of the 288 routed tokens.
    const fallback = await run('qwen3_moe', moe('fallback', 150), ['--format', 'json']);
    expect(fallback.code, fallback.io.err.join('')).toBe(0);
    const a = JSON.parse(fallback.io.out.join('')) as Report;
    const low = a.gptq.modules.filter((m) => m.method === 'rtn-coverage');
    expect(low.length).toBeGreaterThan(0);
    expect(low.every((m) => /\.experts\.\d+\./.test(m.module))).toBe(true);
    expect(a.gptq.fallbacks).toEqual(low.map((m) => ({ module: m.module, method: 'rtn-coverage' })));
    const warned = a.diagnostics.find((d) => d.code === 'apply-expert-fallback')!;
    for (const m of low) {
      const [, layer, expert] = /layers\.(\d+)\..*experts\.(\d+)\./.exec(m.module)!;
      expect(warned.message).toContain(`layer ${layer} expert ${expert} (`);
    }
    await nonzero(fallback.cwd, low.map((m) => m.module));
    const text = await run('qwen3_moe', moe('fallback', 150));
    expect(text.io.out.join('')).toContain(`, ${low.length} by the coverage policy;`);
    // warning: experts keep their few tokens' Hessians, except those that saw none (2 tokens of 1 sample).
    const warning = await run('qwen3_moe', moe('warning', 1), ['--format', 'json', '--samples', '1', '--seq-len', '2']);
    expect(warning.code, warning.io.err.join('')).toBe(0);
    const b = JSON.parse(warning.io.out.join('')) as Report;
    const empty = b.gptq.modules.filter((m) => m.method === 'rtn-coverage');
    expect(empty.length).toBeGreaterThan(0);
    expect(b.diagnostics.find((d) => d.code === 'apply-expert-coverage-low')!.message).toMatch(/ \d+ of them saw no token and (is|are) quantized data-free/);
    expect(b.gptq.modules.filter((m) => /\.experts\.\d+\./.test(m.module) && m.method === 'gptq').length).toBeGreaterThan(0);
    await nonzero(warning.cwd, empty.map((m) => m.module));
    // error: nothing is written.
    const error = await run('qwen3_moe', moe('error', 150));
    expect(error.code).toBe(1);
    expect(error.io.err.join('')).toMatch(/error apply-expert-coverage: \d+ experts saw fewer than min_expert_tokens = 150 calibration tokens: layer \d expert \d/);
    expect(await readdir(error.cwd)).toEqual(['recipe.yaml']);
  });

  test('an Embedding target is a gptq-embedding-rtn warning in the plan and in --format json, and is rounded to nearest', async () => {
    const { code, io, cwd } = await run('llama', gptqRecipe('W4A16', '[lm_head]').replace('targets: [Linear]', 'targets: [Linear, Embedding]'), ['--format', 'json']);
    expect(code, io.err.join('')).toBe(0);
    expect(io.err.join('')).toContain('warning gptq-embedding-rtn: GPTQ solves Linear modules only: the Embedding "model.embed_tokens" gets the scheme by round-to-nearest instead');
    const report = JSON.parse(io.out.join('')) as { quantized: number; gptq: { modules: { module: string }[] }; diagnostics: { code: string }[] };
    expect(report.diagnostics.map((d) => d.code)).toEqual(['gptq-embedding-rtn']);
    expect(report.quantized).toBe(15);
    expect(report.gptq.modules.map((m) => m.module)).not.toContain('model.embed_tokens');
    const out = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    expect(out.has('model.embed_tokens.weight_packed')).toBe(true);
  });

  test('--quiet keeps stderr for diagnostics alone', async () => {
    const { code, io } = await run('llama', gptqRecipe('W4A16', '[lm_head]'), ['--quiet']);
    expect(code).toBe(0);
    expect(io.err.join('')).toBe('');
    expect(io.out.join('')).toContain('  gptq         14 modules');
  });

  test('a vision-language model: GPTQ through its language model, refused on its vision tower', async () => {
    const ok = await run('llava', gptqRecipe('W4A16', '["re:.*lm_head", "re:.*vision_tower.*", "re:.*multi_modal_projector.*"]'));
    expect(ok.code, ok.io.err.join('')).toBe(0);
    const config = JSON.parse(await readFile(join(ok.cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: { ignore: string[] } };
    expect(config.quantization_config.ignore).toContain('language_model.lm_head');
    expect(config.quantization_config.ignore).toContain('multi_modal_projector.linear_1');
    const out = parseSafetensors(new Uint8Array(await readFile(join(ok.cwd, 'out', 'model.safetensors'))));
    expect(out.has('language_model.model.layers.1.mlp.down_proj.weight_packed')).toBe(true);
    const tower = await run('llava', gptqRecipe('FP8_DYNAMIC', '["re:.*lm_head"]'));
    expect(tower.code).toBe(1);
    expect(tower.io.err.join('')).toContain('model.vision_tower.encoder.layers.0.self_attn.k_proj: apply calibrates text only');
  });

  test('the other vision-language models: GPTQ through the language model with their examples\' ignore lists, refused on the vision side', async () => {
    const cases: readonly (readonly [string, string, string, string])[] = [
      // model, ignore list of llm-compressor's example, an ignored name as the config lists it, the last layer's down_proj as stored
      ['qwen2_vl', '["lm_head", "re:visual.*", "re:model.visual.*"]', 'visual.merger.mlp.0', 'model.layers.1.mlp.down_proj'],
      ['qwen3_vl', '["re:.*lm_head", "re:.*visual.*"]', 'model.visual.deepstack_merger_list.0.linear_fc1', 'model.language_model.layers.1.mlp.down_proj'],
      ['idefics3', '["re:.*lm_head", "re:model.vision_model.*", "re:model.connector.*"]', 'model.connector.modality_projection.proj', 'model.text_model.layers.1.mlp.down_proj'],
      ['internvl', '["re:.*lm_head", "re:.*vision_tower.*", "re:.*multi_modal_projector.*"]', 'multi_modal_projector.linear_1', 'language_model.model.layers.1.mlp.down_proj'],
    ];
    for (const [model, ignore, ignored, last] of cases) {
      const ok = await run(model, gptqRecipe('W4A16', ignore));
      expect(ok.code, `${model}: ${ok.io.err.join('')}`).toBe(0);
      const config = JSON.parse(await readFile(join(ok.cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: { ignore: string[] } };
      expect(config.quantization_config.ignore, model).toContain(ignored);
      const out = parseSafetensors(new Uint8Array(await readFile(join(ok.cwd, 'out', 'model.safetensors'))));
      expect(out.has(`${last}.weight_packed`), model).toBe(true);
      expect([...out.keys()].filter((k) => k.endsWith('.weight_packed')), model).toHaveLength(14);
    }
    // Idefics3's connector is outside the language model too.
    const connector = await run('idefics3', gptqRecipe('W4A16', '["re:.*lm_head", "re:model.vision_model.*"]'));
    expect(connector.code).toBe(1);
    expect(connector.io.err.join('')).toContain('model.connector.modality_projection.proj: apply calibrates text only');
  });

  test('a targeted lm_head is solved with the last layer, from the final norm\'s outputs', async () => {
    const { code, io, cwd } = await run('llama', gptqRecipe('W4A16', '[]'), ['--format', 'json']);
    expect(code, io.err.join('')).toBe(0);
    const report = JSON.parse(io.out.join('')) as { gptq: { hessians: number; modules: { module: string; method: string; samples: number }[] } };
    expect(report.gptq.modules).toHaveLength(15);
    // Solved last, with the last layer, with its own Hessian over every calibration sequence.
    expect(report.gptq.modules.at(-1)).toMatchObject({ module: 'lm_head', method: 'gptq', samples: 9 });
    expect(report.gptq.hessians).toBe(9);
    const out = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    expect(out.has('lm_head.weight_packed') && out.has('lm_head.weight_scale') && !out.has('lm_head.weight')).toBe(true);
  });

  test('a targeted lm_head with static input scales (FP8) gets its input scale from the same pass', async () => {
    const { code, io, cwd } = await run('llama', gptqRecipe('FP8', '[]'));
    expect(code, io.err.join('')).toBe(0);
    const out = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    const scale = out.get('lm_head.input_scale');
    expect(scale?.shape.reduce((a, b) => a * b, 1)).toBe(1);
    expect(out.get('lm_head.weight')?.dtype).toBe('F8_E4M3');
  });

  test('a vision-language model\'s lm_head is solved with its language model\'s last layer', async () => {
    for (const model of ['llava', 'mistral3']) {
      const { code, io, cwd } = await run(model, gptqRecipe('W4A16', '["re:.*vision_tower.*", "re:.*multi_modal_projector.*"]'), ['--format', 'json']);
      expect(code, io.err.join('')).toBe(0);
      const report = JSON.parse(io.out.join('')) as { gptq: { modules: { module: string; method: string }[] } };
      const head = report.gptq.modules.at(-1)!;
      expect(head.module, model).toMatch(/(^|\.)lm_head$/);
      expect(head.method).toBe('gptq');
      const out = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      expect(out.has(`${head.module}.weight_packed`), model).toBe(true);
    }
  });
});
