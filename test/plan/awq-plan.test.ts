/**
 * AWQ in plans: every resolved mapping (smooth layer → balance layers) and
 * every skipped one with its reason, the registry per model class
 * (llm-compressor's AWQ_MAPPING_REGISTRY), the diagnostics for what
 * llm-compressor only logs, and `explain` answering why a module is or is
 * not balanced.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function run(command: 'plan' | 'explain', modifier: string, model: string, extra: string[] = [], ignore = '[lm_head]'): Promise<{ code: number; stdout: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'quantc-awq-plan-'));
  const recipe = join(dir, 'r.yaml');
  await writeFile(recipe, `quant_stage:\n  quant_modifiers:\n    AWQModifier: ${modifier}\n    QuantizationModifier: {targets: [Linear], scheme: W4A16_ASYM, ignore: ${ignore}}\n`);
  let stdout = '';
  const code = await main([command, recipe, '--model', model, ...extra], { stdout: (t) => (stdout += t), stderr: (t) => (stdout += t), cwd: ROOT, isTty: false });
  return { code, stdout };
}

describe('AWQ in plans', () => {
  it('lists the resolved mappings, and v_proj → o_proj as skipped on grouped-query attention', async () => {
    const llama = await run('plan', '{}', 'meta-llama/Llama-3.1-8B');
    expect(llama.code).toBe(0);
    expect(llama.stdout).toContain(
      [
        '                  model.layers.{0..31}.input_layernorm → self_attn.{q,k,v}_proj',
        '                  model.layers.{0..31}.post_attention_layernorm → mlp.{gate,up}_proj',
        '                  model.layers.{0..31}.mlp.up_proj → down_proj',
        '                  skipped: model.layers.{0..31}.self_attn.v_proj → o_proj (its output width differs from the input width of its balance layer (grouped-query attention), so llm-compressor skips it)',
      ].join('\n'),
    );
    expect(llama.stdout).toContain('warning awq-mapping-skipped: AWQ skips 32 smooth layers (model.layers.{0..31}.self_attn.v_proj): its output width differs');
    // MoE (Qwen3-30B-A3B): the router and every expert's gate/up balance against the post-attention norm, one up → down per expert.
    const qwen = await run('plan', '{}', 'Qwen/Qwen3-30B-A3B', [], '[lm_head, "re:.*mlp.gate$"]');
    expect(qwen.stdout).toContain('model.layers.{0..47}.post_attention_layernorm → mlp.gate, mlp.experts.{0..127}.{gate,up}_proj');
    expect(qwen.stdout).toContain('model.layers.{0..47}.mlp.experts.{0..127}.up_proj → down_proj');
    expect(qwen.stdout).toContain('warning awq-balance-unquantized: 48 modules (model.layers.{0..47}.mlp.gate) are balance layers of AWQ but no quantization modifier targets them');
    const glm = await run('plan', '{}', 'zai-org/GLM-4.7-Flash');
    expect(glm.stdout).toContain('model.layers.{0..46}.self_attn.q_a_layernorm → q_b_proj');
  });

  it('warns on default mappings and unmatched patterns, and errs when nothing resolves, naming the class', async () => {
    const acme = await run('plan', '{}', 'test/cases/plan-moe/acme-tree.json');
    expect(acme.stdout).toContain('warning awq-default-mappings: llm-compressor has no AWQ mappings for "AcmeForCausalLM"');
    // compressed-tensors' match_modules_set raises on a mapping whose balance patterns never complete a set.
    expect(acme.stdout).toContain('error awq-mapping-invalid: Found a final incomplete set with matches found for keys: "re:.*post_attention_layernorm$" but no matches found for keys: "re:.*gate_proj$", "re:.*up_proj$"; llm-compressor stops there too.');
    // A typo leaves the balance pattern's matches without a set: compressed-tensors raises, and so does the plan.
    const typo = await run('plan', '{mappings: [{smooth_layer: "re:.*input_layernrom$", balance_layers: ["re:.*q_proj$"]}]}', 'meta-llama/Llama-3.1-8B');
    expect(typo.code).toBe(1);
    expect(typo.stdout).toContain('error awq-mapping-invalid: Found a final incomplete set with matches found for keys: "re:.*q_proj$" but no matches found for keys: "re:.*input_layernrom$"');
    // A mapping for modules the model lacks resolves to nothing: a warning per pattern, an error naming the class.
    const none = await run('plan', '{mappings: [{smooth_layer: "re:.*q_a_layernorm$", balance_layers: ["re:.*q_b_proj$"]}]}', 'meta-llama/Llama-3.1-8B');
    expect(none.code).toBe(1);
    expect(none.stdout).toContain('warning awq-mapping-unmatched: AWQ mapping pattern "re:.*q_a_layernorm$" matches no module of this model');
    expect(none.stdout).toContain('error awq-no-mappings: AWQModifier resolves no mapping on "LlamaForCausalLM" (the recipe\'s mappings match no quantized smooth/balance layers)');
    const own = await run('plan', '{mappings: [{smooth_layer: "re:.*post_attention_layernorm$", balance_layers: ["re:.*gate_proj$", "re:.*up_proj$"]}]}', 'meta-llama/Llama-3.1-8B');
    expect(own.code).toBe(0);
    expect(own.stdout).toContain('model.layers.{0..31}.post_attention_layernorm → mlp.{gate,up}_proj');
    expect(own.stdout).not.toContain('input_layernorm →');
  });

  it("errs where llm-compressor's resolution raises: DeepSeek-V3's dense layers have no router, so its own mappings merge every layer into one set", async () => {
    const r = await run('plan', '{}', 'deepseek-ai/DeepSeek-V3');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('error awq-mapping-invalid: AWQ needs to match a single smooth layer for each mapping but got 61 (model.layers.{0..60}.post_attention_layernorm) in one set of mapping');
  });

  it('skips a mapping no quantization modifier targets (neither its smooth layer nor a balance layer)', async () => {
    const r = await run('plan', '{}', 'meta-llama/Llama-3.1-8B', [], '[lm_head, "re:.*down_proj$", "re:.*up_proj$"]');
    expect(r.stdout).toContain('skipped: model.layers.{0..31}.mlp.up_proj → down_proj (no layer of the mapping is targeted for quantization)');
    expect(r.code).toBe(0);
  });

  it('skips a mapping whose smooth layer alone is quantized: no balance weights to search over', async () => {
    const r = await run('plan', '{}', 'meta-llama/Llama-3.1-8B', [], '[lm_head, "re:.*down_proj$"]');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('skipped: model.layers.{0..31}.mlp.up_proj → down_proj (none of its balance layers is quantized, so the grid search has no weights to weigh;');
    expect(r.stdout).toContain('warning awq-mapping-skipped: AWQ skips 32 smooth layers (model.layers.{0..31}.mlp.up_proj): none of its balance layers is quantized');
    expect(r.stdout).not.toContain('awq-balance-unquantized');
    const up = await run('explain', '{}', 'meta-llama/Llama-3.1-8B', ['model.layers.0.mlp.up_proj'], '[lm_head, "re:.*down_proj$"]');
    expect(up.stdout).toContain('which is skipped');
  });

  it('explains a module that smooths one mapping and balances another, and one that is not balanced', async () => {
    const v = await run('explain', '{}', 'meta-llama/Llama-3.1-8B', ['model.layers.3.self_attn.v_proj']);
    expect(v.stdout).toContain('awq: balance layer of "model.layers.3.input_layernorm"; its input columns are multiplied by that mapping\'s scales, chosen by the loss on "model.layers.3.self_attn".');
    expect(v.stdout).toContain('awq: smooth layer of the mapping "model.layers.3.self_attn.v_proj" → "model.layers.3.self_attn.o_proj", which is skipped');
    const head = await run('explain', '{}', 'meta-llama/Llama-3.1-8B', ['lm_head']);
    expect(head.stdout).toContain('awq: not balanced: no AWQ mapping names it as a smooth or balance layer.');
  });
});
