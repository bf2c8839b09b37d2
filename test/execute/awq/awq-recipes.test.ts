/**
 * AWQ end to end through the CLI: the built-in recipe on the tiny llama,
 * and a grouped-query, sliding-window model (the tiny mistral: window 8 of
 * 32-token windows) whose v_proj → o_proj mapping is skipped; the search
 * never keeps a point worse than the identity, and the checkpoint carries
 * zero points.
 */
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { CALIBRATION, modelWithTokenizer } from '../../calibrate-refs.js';
import { parseSafetensors } from '../fixtures.js';
import { memoryIo } from '../../memory-io.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface AwqJson {
  readonly awq: { mappings: { smooth: string; initialLoss: number; bestLoss: number }[] };
}

async function apply(recipe: string, model: string): Promise<{ code: number; err: string; json: AwqJson; tensors: Map<string, unknown> }> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-awq-e2e-'));
  await copyFile(recipe, join(cwd, 'recipe' + recipe.slice(recipe.lastIndexOf('.'))));
  const io = memoryIo(cwd);
  const code = await main(['apply', `recipe${recipe.slice(recipe.lastIndexOf('.'))}`, '--model', await modelWithTokenizer(model), '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32', '--format', 'json', '-q'], io);
  const json = code === 0 ? (JSON.parse(io.out.join('')) as AwqJson) : ({} as AwqJson);
  const tensors = code === 0 ? parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors')))) : new Map();
  return { code, err: io.err.join(''), json, tensors };
}

describe('AWQ end to end', () => {
  test('the built-in llama3-8b-w4a16-awq recipe applies to the tiny llama', async () => {
    const r = await apply(join(ROOT, 'recipes', 'llama3-8b-w4a16-awq.qr'), 'llama');
    expect(r.code, r.err).toBe(0);
    const mappings = r.json.awq.mappings;
    expect(mappings.map((m) => m.smooth)).toEqual([0, 1].flatMap((l) => ['input_layernorm', 'self_attn.v_proj', 'post_attention_layernorm', 'mlp.up_proj'].map((m) => `model.layers.${l}.${m}`)));
    for (const m of mappings) expect(m.bestLoss, m.smooth).toBeLessThanOrEqual(m.initialLoss);
    expect(r.tensors.has('model.layers.1.mlp.down_proj.weight_zero_point')).toBe(true);
  });

  test('grouped-query attention with a sliding window (mistral): v_proj → o_proj skipped, the rest balanced', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-awq-recipe-'));
    const recipe = join(dir, 'awq.yaml');
    const group = '{targets: [Linear], weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}}';
    await writeFile(recipe, `quant_stage:\n  quant_modifiers:\n    AWQModifier: {}\n    QuantizationModifier:\n      ignore: [lm_head]\n      config_groups: {group_0: ${group}}\n`);
    const r = await apply(recipe, 'mistral');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('warning awq-mapping-skipped: AWQ skips 2 smooth layers (model.layers.{0,1}.self_attn.v_proj)');
    const mappings = r.json.awq.mappings;
    expect(mappings.map((m) => m.smooth.replace(/^model\.layers\.\d\./, ''))).toEqual(['input_layernorm', 'post_attention_layernorm', 'mlp.up_proj', 'input_layernorm', 'post_attention_layernorm', 'mlp.up_proj']);
    for (const m of mappings) expect(m.bestLoss, m.smooth).toBeLessThanOrEqual(m.initialLoss);
  });

  test('a mapping whose balance layers are all ignored (up_proj → down_proj) is skipped with a warning, the rest run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-awq-recipe-'));
    const recipe = join(dir, 'awq.yaml');
    await writeFile(recipe, 'quant_stage:\n  quant_modifiers:\n    AWQModifier: {}\n    QuantizationModifier: {targets: [Linear], scheme: W4A16_ASYM, ignore: [lm_head, "re:.*down_proj$"]}\n');
    const r = await apply(recipe, 'llama');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('warning awq-mapping-skipped: AWQ skips 2 smooth layers (model.layers.{0,1}.mlp.up_proj): none of its balance layers is quantized');
    expect(r.json.awq.mappings.map((m) => m.smooth.replace(/^model\.layers\.\d\./, ''))).toEqual(['input_layernorm', 'self_attn.v_proj', 'post_attention_layernorm', 'input_layernorm', 'self_attn.v_proj', 'post_attention_layernorm']);
    expect(r.tensors.has('model.layers.0.mlp.down_proj.weight')).toBe(true);
  });
});

describe('AWQ parents apply does not evaluate', () => {
  test('MLA attention with the DSA indexer (GLM-5) is refused before any work, naming the mapping and the class', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-awq-recipe-'));
    const recipe = join(dir, 'awq.yaml');
    await writeFile(recipe, 'quant_stage:\n  quant_modifiers:\n    AWQModifier: {}\n    QuantizationModifier: {targets: [Linear], scheme: W4A16_ASYM, ignore: [lm_head, "re:.*mlp.gate$"]}\n');
    const r = await apply(recipe, 'glm_moe_dsa');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error apply-unsupported: AWQ mapping model\.layers\.0\.input_layernorm → .*q_a_proj.*: apply's grid search evaluates .* not "model\.layers\.0\.self_attn" \(GlmMoeDsaAttention\)/);
  });

  test("Qwen3-Next's gated attention (q_proj also yields the output gate) is refused, naming the mapping and the class", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quantc-awq-recipe-'));
    const recipe = join(dir, 'awq.yaml');
    const mappings = '[{smooth_layer: "re:.*layers\\\\.(1|3)\\\\.input_layernorm$", balance_layers: ["re:.*q_proj$", "re:.*k_proj$", "re:.*v_proj$"]}]';
    await writeFile(recipe, `quant_stage:\n  quant_modifiers:\n    AWQModifier: {mappings: ${mappings}}\n    QuantizationModifier: {targets: [Linear], scheme: W4A16_ASYM, ignore: [lm_head, "re:.*mlp.gate$", "re:.*shared_expert_gate$"]}\n`);
    const r = await apply(recipe, 'qwen3_next');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/error apply-unsupported: AWQ mapping model\.layers\.1\.input_layernorm → .*q_proj.*: apply's grid search evaluates .* not "model\.layers\.1\.self_attn" \(Qwen3NextAttention\)/);
  });
});
