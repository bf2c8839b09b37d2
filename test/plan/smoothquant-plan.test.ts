/**
 * SmoothQuant in plans: the resolved mappings as step lines and JSON, the
 * registry per model class, and the diagnostics for what llm-compressor
 * only logs (default mappings, skipped mappings) or silently does nothing
 * with (mappings that resolve to nothing).
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function plan(modifier: string, model: string): Promise<{ code: number; stdout: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'quantc-sq-plan-'));
  const recipe = join(dir, 'r.yaml');
  await writeFile(recipe, `quant_stage:\n  quant_modifiers:\n    SmoothQuantModifier: ${modifier}\n    QuantizationModifier: {targets: [Linear], scheme: W8A8, ignore: [lm_head, "re:.*mlp.gate$"]}\n`);
  let stdout = '';
  const code = await main(['plan', recipe, '--model', model], { stdout: (t) => (stdout += t), stderr: (t) => (stdout += t), cwd: ROOT, isTty: false });
  return { code, stdout };
}

describe('SmoothQuant in plans', () => {
  it('lists the registry mappings of the model class under the transform step', async () => {
    const llama = await plan('{smoothing_strength: 0.8}', 'meta-llama/Llama-3.1-8B');
    expect(llama.code).toBe(0);
    expect(llama.stdout).toContain('                  model.layers.{0..31}.input_layernorm → self_attn.{q,k,v}_proj\n                  model.layers.{0..31}.post_attention_layernorm → mlp.{gate,up}_proj\n');
    // Qwen3-MoE: attention only, one scale across all experts is not what llm-compressor does.
    const qwen = await plan('{}', 'Qwen/Qwen3-30B-A3B');
    expect(qwen.code).toBe(0);
    expect(qwen.stdout).toContain('                  model.layers.{0..47}.input_layernorm → self_attn.{q,k,v}_proj\n   ');
    const glm = await plan('{}', 'zai-org/GLM-4.7-Flash');
    expect(glm.stdout).toContain('model.layers.{0..46}.input_layernorm → self_attn.{q_a_proj,kv_a_proj_with_mqa}\n');
  });

  it('warns when the class has no registered mappings, and errs when mappings resolve to nothing', async () => {
    const acme = await plan('{}', 'test/cases/plan-moe/acme-tree.json');
    expect(acme.stdout).toContain('warning smoothquant-default-mappings: llm-compressor has no SmoothQuant mappings for "AcmeForCausalLM"');
    const none = await plan('{mappings: [[["re:.*q_proj"], "re:.*no_such_norm"]]}', 'meta-llama/Llama-3.1-8B');
    expect(none.code).toBe(1);
    expect(none.stdout).toContain('error smoothquant-no-mappings: SmoothQuantModifier resolves no mapping on this model: it would smooth nothing.');
    const invalid = await plan('{mappings: [[["re:.*q_proj("], "re:.*input_layernorm"]]}', 'meta-llama/Llama-3.1-8B');
    expect(invalid.code).toBe(1);
    expect(invalid.stdout).toContain('error regex-invalid: Invalid regular expression "re:.*q_proj(": ');
  });

  it('skips a mapping whose layers are all ignored, and says so', async () => {
    const r = await plan('{ignore: ["re:.*input_layernorm", "re:.*[qkv]_proj"]}', 'meta-llama/Llama-3.1-8B');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('warning smoothquant-mapping-skipped: SmoothQuant skips 32 smooth layers (model.layers.{0..31}.input_layernorm): all layers in the mapping are in the ignore list.');
    expect(r.stdout).toContain('                  model.layers.{0..31}.post_attention_layernorm → mlp.{gate,up}_proj\n');
    expect(r.stdout).not.toContain('input_layernorm → ');
  });
});
