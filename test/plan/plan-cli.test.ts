/**
 * The plan-side commands end to end, in process: an unknown MoE class in a
 * module-tree JSON stops the plan (`moe-unsupported`), declaring a rewrite
 * for it in the recipe makes the plan succeed, and `diff` / `explain` say
 * what changed and why. Outputs are golden files.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CASE = 'test/cases/plan-moe';
const MODEL = `${CASE}/acme-tree.json`;

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), cwd: ROOT, isTty: false });
  return { code, stdout, stderr };
}

describe('quantc plan with an unknown MoE class', () => {
  it('fails with moe-unsupported when no rewrite is declared', async () => {
    const r = await run('plan', `${CASE}/undeclared.qr`, '--model', MODEL);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('error moe-unsupported: MoE-like class "AcmeMoE" (2 modules');
    await expect(r.stdout).toMatchFileSnapshot(`../cases/plan-moe/undeclared.plan.txt`);
  });

  it('with --format json, a recipe that does not compile prints its diagnostics as JSON on stdout', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/quantc-json-errors-`);
    writeFileSync(`${dir}/bad.qr`, 'recipe "bad" version "1"\nstage q {\n  QuantizationModifer {\n    targets = [Linear]\n  }\n}\n');
    for (const argv of [
      ['plan', `${dir}/bad.qr`, '--model', MODEL, '--format', 'json'],
      ['explain', `${dir}/bad.qr`, 'model.layers.0.mlp', '--model', MODEL, '--format', 'json'],
      ['diff', `${CASE}/declared.qr`, `${dir}/bad.qr`, '--model', MODEL, '--format', 'json'],
    ]) {
      const r = await run(...argv);
      expect(r.code, argv[0]).toBe(1);
      expect(r.stderr, argv[0]).toBe('');
      const { diagnostics } = JSON.parse(r.stdout);
      expect(diagnostics.map((d: { code: string; span: { start: { line: number } } }) => [d.code, d.span.start.line]), argv[0]).toEqual([['unknown-modifier', 3]]);
    }
    const text = await run('plan', `${dir}/bad.qr`, '--model', MODEL);
    expect([text.code, text.stdout]).toEqual([1, '']);
    expect(text.stderr).toContain('error unknown-modifier:');
  });

  it('succeeds once the recipe declares a rewrite, and the JSON records it', async () => {
    const r = await run('plan', `${CASE}/declared.qr`, '--model', MODEL, '--format', 'json');
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.moe.rewrites).toEqual([
      { module: 'model.layers.0.mlp', class: 'AcmeMoE', rewrite: 'unpack-fused-experts', experts: 4, expertsModule: 'model.layers.0.mlp.experts', declared: true },
      { module: 'model.layers.1.mlp', class: 'AcmeMoE', rewrite: 'unpack-fused-experts', experts: 4, expertsModule: 'model.layers.1.mlp.experts', declared: true },
    ]);
    expect(plan.quantize).toHaveLength(8 + 24);
    const text = await run('plan', `${CASE}/declared.qr`, '--model', MODEL);
    await expect(text.stdout).toMatchFileSnapshot(`../cases/plan-moe/declared.plan.txt`);
  });

  it('--fail-on warning turns warnings into exit 1', async () => {
    const r = await run('plan', 'recipes/qwen3-30b-a3b-nvfp4.qr', '--fail-on', 'warning', '--format', 'json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).summary.warnings).toBeGreaterThan(0);
  });

  it('diff lists the modules whose treatment changes', async () => {
    const r = await run('diff', `${CASE}/undeclared.qr`, `${CASE}/declared.qr`, '--model', MODEL);
    expect(r.code).toBe(0);
    await expect(r.stdout).toMatchFileSnapshot(`../cases/plan-moe/diff.txt`);
  });

  it('diff speaks of one module in the singular and says when it shows only some patterns', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/quantc-diff-`);
    // Twelve Linear modules at different depths: no two compress into one pattern.
    const names = Array.from({ length: 12 }, (_, k) => Array.from({ length: k + 1 }, () => 'm').join('.'));
    const linear = (name: string) => ({ name, class: 'Linear', bases: ['Module'], params: { weight: { shape: [128, 128], dtype: 'bfloat16' } } });
    writeFileSync(`${dir}/tree.json`, JSON.stringify({ model_type: 'deep', modules: [{ name: '', class: 'Deep', bases: ['Module'], params: {} }, ...names.map(linear)] }));
    const recipe = (scheme: string, ignore: string) => `recipe "r" version "1"\nstage q {\n  QuantizationModifier {\n    targets = [Linear]\n    scheme = ${scheme}\n    ignore = ${ignore}\n  }\n}\n`;
    writeFileSync(`${dir}/a.qr`, recipe('W4A16', '[]'));
    writeFileSync(`${dir}/b.qr`, recipe('W8A16', '[]'));
    writeFileSync(`${dir}/c.qr`, recipe('W8A16', '["m"]'));
    const many = await run('diff', `${dir}/a.qr`, `${dir}/b.qr`, '--model', `${dir}/tree.json`);
    expect(many.code).toBe(0);
    expect(many.stdout).toContain('~ 12 modules: scheme W4A16 → W8A16\n');
    expect(many.stdout).toContain('    m.m.m.m.m.m.m.m.m.m\n    … and 2 more patterns\n');
    const one = await run('diff', `${dir}/b.qr`, `${dir}/c.qr`, '--model', `${dir}/tree.json`);
    expect(one.stdout.split('\n').slice(1)).toEqual(['', '- 1 module: no longer quantized (was W8A16)', '    m', '- 1 module: now ignored by "m"', '    m', '', '1 module changes treatment.', '']);
  });

  it('explain names the rule and line for rewritten, ignored and untouched modules', async () => {
    const r = await run(
      'explain',
      `${CASE}/declared.qr`,
      '--model',
      MODEL,
      'model.layers.1.mlp.experts.2.up_proj',
      'model.layers.0.mlp.gate',
      'model.layers.0.mlp.experts',
      'model.layers.0.input_layernorm',
    );
    expect(r.code).toBe(0);
    await expect(r.stdout).toMatchFileSnapshot(`../cases/plan-moe/explain.txt`);
  });

  it('explain names an ignore entry that matches an untargeted module without effect, and the root module', async () => {
    const r = await run('explain', 'recipes/qwen3-30b-a3b-nvfp4.qr', 'model.layers.0.mlp.gate', '');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'model.layers.0.mlp.gate (Qwen3MoeTopKRouter)',
      '  QuantizationModifier #0 (stage "quant"): no target matches it; ignore entry "re:.*mlp\\.gate$" at recipes/qwen3-30b-a3b-nvfp4.qr:20:26 matches it too, which changes nothing.',
      '  result: left as is (not quantized).',
      '(root) (Qwen3MoeForCausalLM: Qwen3MoePreTrainedModel → PreTrainedModel)',
      '  QuantizationModifier #0 (stage "quant"): no target matches it.',
      '  result: left as is (not quantized).',
      '',
    ]);
  });

  it('explain says a GPTQ-targeted lm_head is solved with the last decoder layer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-plan-head-'));
    const recipe = join(dir, 'head.yaml');
    await writeFile(recipe, 'quantc:\n  recipe: {name: head, version: 1.0.0, model: meta-llama/Llama-3.1-8B}\nquant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: Linear\n      scheme: W4A16\n      ignore: []\n');
    const r = await run('explain', recipe, 'lm_head');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('  gptq:'))).toEqual([
      '  gptq: solved after the statistics pass of model.layers.31; its input Hessian (4096×4096 float32, 67.1 MB) is its own.',
    ]);
  });

  it('explain says where GPTQ solves a module and which modules share its Hessian', async () => {
    const r = await run(
      'explain',
      'recipes/deepseek-v3-w4a16-gptq.qr',
      'model.layers.5.mlp.experts.17.up_proj',
      'model.layers.5.mlp.experts.17.down_proj',
      'model.layers.5.self_attn.q_a_proj',
      'lm_head',
    );
    expect(r.code).toBe(0);
    const gptq = r.stdout.split('\n').filter((l) => l.startsWith('  gptq:'));
    expect(gptq).toEqual([
      '  gptq: solved after the statistics pass of model.layers.5; its input Hessian (7168×7168 float32, 206 MB) is shared with 511 other modules (e.g. "model.layers.5.mlp.experts.0.gate_proj").',
      '  gptq: solved after the statistics pass of model.layers.5; its input Hessian (2048×2048 float32, 16.8 MB) is its own.',
      '  gptq: solved after the statistics pass of model.layers.5; its input Hessian (7168×7168 float32, 206 MB) is shared with "model.layers.5.self_attn.kv_a_proj_with_mqa".',
    ]);
  });

  it('a single rewritten MoE block reads in the singular', async () => {
    const r = await run('plan', 'recipes/glm-4.7-flash-nvfp4.qr', '--model', 'test/fixtures/trees/glm_moe_dsa/default.config.json');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('\n  1 GlmMoeDsaMoE module gets calibration rewrite: unpack 256 fused experts');
  });

  it('explain of a parameter names the module that holds it and what the rewrite made of it', async () => {
    const r = await run('explain', 'recipes/glm-4.7-flash-nvfp4.qr', 'model.layers.1.mlp.experts.gate_up_proj', 'lm_head.weight');
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toEqual([
      'quantc: The model has no module "model.layers.1.mlp.experts.gate_up_proj". "gate_up_proj" is a parameter of "model.layers.1.mlp.experts" (Glm4MoeLiteExperts), not a module. The calibration rewrite unpacks it into per-expert Linear modules such as "model.layers.1.mlp.experts.0.up_proj".',
      'quantc: The model has no module "lm_head.weight". "weight" is a parameter of "lm_head" (Linear), not a module.',
      '',
    ]);
  });

  it('an attach step names the target that decided its modules, not the group\'s first target', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/quantc-reason-`);
    writeFileSync(`${dir}/e.qr`, 'recipe "e" version "1"\nstage q {\n  QuantizationModifier {\n    targets = [Linear, Embedding]\n    scheme = W8A16\n    ignore = [Linear]\n  }\n}\n');
    const r = await run('plan', `${dir}/e.qr`, '--model', 'meta-llama/Llama-3.1-8B', '--format', 'json');
    expect(r.code).toBe(0);
    const attach = JSON.parse(r.stdout).steps.find((s: { action: string }) => s.action === 'attach');
    expect(attach.modules).toEqual(['model.embed_tokens']);
    expect(attach.reason).toEqual({ pattern: 'Embedding', span: { file: `${dir}/e.qr`, line: 4, column: 24 } });
  });

  it('explain of an unknown module suggests the nearest name', async () => {
    const r = await run('explain', `${CASE}/declared.qr`, '--model', MODEL, 'model.layers.0.mlp.expert');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('quantc: The model has no module "model.layers.0.mlp.expert". Did you mean "model.layers.0.mlp.experts"?\n');
  });

  it('bad usage and unreadable input exit 2 with one line', async () => {
    expect((await run('plan')).code).toBe(2);
    const missing = await run('plan', `${CASE}/nope.qr`, '--model', MODEL);
    expect(missing.code).toBe(2);
    expect(missing.stderr.split('\n')).toHaveLength(2);
    const noModel = await run('plan', `${CASE}/declared.qr`, '--model', `${CASE}/no-such-model`);
    expect(noModel.code).toBe(2);
    expect(noModel.stderr).toMatch(/^quantc: /);
  });

  it('--save writes the plan JSON atomically and diff reads saved plans', async () => {
    const { mkdtempSync, readFileSync, readdirSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/quantc-plan-`);
    expect((await run('plan', `${CASE}/undeclared.qr`, '--model', MODEL, '--save', `${dir}/old.json`)).code).toBe(1);
    expect((await run('plan', `${CASE}/declared.qr`, '--model', MODEL, '--save', `${dir}/new.json`, '--out', `${dir}/new.txt`)).code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['new.json', 'new.txt', 'old.json']);
    expect(JSON.parse(readFileSync(`${dir}/new.json`, 'utf8')).recipe.hash).toMatch(/^sha256:/);
    const fromSaved = await run('diff', `${dir}/old.json`, `${dir}/new.json`);
    const fromRecipes = await run('diff', `${CASE}/undeclared.qr`, `${CASE}/declared.qr`, '--model', MODEL);
    expect(fromSaved.stdout.split('\n').slice(1)).toEqual(fromRecipes.stdout.split('\n').slice(1));
    const savedVsRecipe = await run('diff', `${dir}/old.json`, `${CASE}/declared.qr`);
    expect(savedVsRecipe.code).toBe(0);
    expect(savedVsRecipe.stdout.split('\n').slice(1)).toEqual(fromRecipes.stdout.split('\n').slice(1));
  });

  it('--out and --save never overwrite the recipe or the model, and are relative to the working directory', async () => {
    const { copyFileSync, mkdtempSync, readFileSync, readdirSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/quantc-plan-`);
    copyFileSync(`${ROOT}/${CASE}/declared.qr`, `${dir}/r.qr`);
    copyFileSync(`${ROOT}/${MODEL}`, `${dir}/tree.json`);
    const recipe = readFileSync(`${dir}/r.qr`, 'utf8');
    const inDir = async (...argv: string[]) => {
      let stderr = '';
      const code = await main(argv, { stdout: () => undefined, stderr: (t) => (stderr += t), cwd: dir, isTty: false });
      return { code, stderr };
    };
    for (const flag of ['--out', '--save']) {
      const r = await inDir('plan', 'r.qr', '--model', 'tree.json', flag, 'r.qr');
      expect(r.code).toBe(2);
      expect(r.stderr).toBe('quantc: cannot write "' + dir + '/r.qr": it is an input file.\n');
      expect((await inDir('plan', 'r.qr', '--model', 'tree.json', flag, 'tree.json')).code).toBe(2);
    }
    expect((await inDir('plan', 'r.qr', '--model', 'tree.json', '--out', 'p.json', '--save', 'p.json')).code).toBe(2);
    expect(await inDir('plan', 'r.qr', '--model', 'tree.json', '--out', 'no/such/folder/plan.txt')).toEqual({
      code: 2,
      stderr: `quantc: cannot write "${dir}/no/such/folder/plan.txt": its folder does not exist.\n`,
    });
    expect((await inDir('plan', 'r.qr', '--model', 'tree.json', '--out', '.')).stderr).toBe(`quantc: cannot write "${dir}": it is a folder.\n`);
    expect(readFileSync(`${dir}/r.qr`, 'utf8')).toBe(recipe);
    expect((await inDir('plan', 'r.qr', '--model', 'tree.json', '--out', 'plan.txt')).code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['plan.txt', 'r.qr', 'tree.json']);
  });
});
