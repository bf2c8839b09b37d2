/** `quantc modules` and `quantc match`, run in-process on a committed model config. */
import { expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import type { CliIo } from '../src/cli/io.js';

const LLAMA = 'test/fixtures/oracle/meta-llama__Llama-3.1-8B/config.json';
const GLM = 'test/fixtures/oracle/zai-org__GLM-4.7-Flash/config.json';

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), cwd: process.cwd(), isTty: false };
  const code = await main(argv, io);
  return { code, stdout, stderr: stderr.replace(/\/\S*\/test\/fixtures/g, 'test/fixtures') };
}

it('modules prints the tree compressed into ranges', async () => {
  const r = await run('modules', '--model', LLAMA);
  expect(r.code).toBe(0);
  expect(r.stdout.replace(/\(\/\S*\/test\/fixtures/g, '(test/fixtures')).toMatchInlineSnapshot(`
    "(root)                                                       LlamaForCausalLM
    model                                                        LlamaModel
      model.embed_tokens                                         Embedding                  weight [128256, 4096] bfloat16
      model.layers                                               ModuleList
        model.layers.{0..31}                                     LlamaDecoderLayer     ×32
          model.layers.{0..31}.self_attn                         LlamaAttention        ×32
            model.layers.{0..31}.self_attn.{q,o}_proj            Linear                ×64  weight [4096, 4096] bfloat16
            model.layers.{0..31}.self_attn.{k,v}_proj            Linear                ×64  weight [1024, 4096] bfloat16
          model.layers.{0..31}.mlp                               LlamaMLP              ×32
            model.layers.{0..31}.mlp.{gate,up}_proj              Linear                ×64  weight [14336, 4096] bfloat16
            model.layers.{0..31}.mlp.down_proj                   Linear                ×32  weight [4096, 14336] bfloat16
            model.layers.{0..31}.mlp.act_fn                      SiLUActivation        ×32
          model.layers.{0..31}.{input,post_attention}_layernorm  LlamaRMSNorm          ×64  weight [4096] bfloat16
      model.norm                                                 LlamaRMSNorm               weight [4096] bfloat16
      model.rotary_emb                                           LlamaRotaryEmbedding
    lm_head                                                      Linear                     weight [128256, 4096] bfloat16

    423 of 423 modules (test/fixtures/oracle/meta-llama__Llama-3.1-8B/config.json (llama))
    "
  `);
});

it('modules --format json lists every module in named_modules order', async () => {
  const r = await run('modules', '--model', LLAMA, '--format', 'json', '--filter', 're:model\\.layers\\.0\\.self_attn');
  const rows = JSON.parse(r.stdout) as { name: string; class: string; bases: string[]; params: Record<string, unknown> }[];
  expect(rows.map((m) => m.name)).toEqual(['model.layers.0.self_attn', ...['q', 'k', 'v', 'o'].map((x) => `model.layers.0.self_attn.${x}_proj`)]);
  expect(rows[2]).toEqual({ name: 'model.layers.0.self_attn.k_proj', class: 'Linear', bases: ['Module'], params: { weight: { shape: [1024, 4096], dtype: 'bfloat16' } } });
  const all = JSON.parse((await run('modules', '--model', LLAMA, '--format', 'json')).stdout) as { name: string }[];
  expect(all[0]!.name).toBe('');
  expect(all.length).toBe(423);
});

it('match shows the winning pattern, skipped and ignored modules, and lints', async () => {
  const r = await run('match', 'Linear', 're:.*experts.*', '--model', GLM, '--ignore', 'lm_head', '--ignore', 're:.*mlp.gate$');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatchInlineSnapshot(`
    "Receive a scheme: 9,208 modules
      model.layers.{0..46}.self_attn.{q_a_proj,q_b_proj,kv_a_proj_with_mqa,kv_b_proj,o_proj}  Linear    ×235  via "Linear"
      model.layers.0.mlp.{gate,up,down}_proj                                                  Linear      ×3  via "Linear"
      model.layers.{1..46}.mlp.experts.{0..63}.{up,gate,down}_proj                            Linear  ×8,832  via "re:.*experts.*"
      model.layers.{1..46}.mlp.shared_experts.{gate,up,down}_proj                             Linear    ×138  via "re:.*experts.*"

    Matched but receive no scheme (not Linear, Embedding or attention): 3,128 modules
      model.layers.{1..46}.mlp.experts                          LinearExperts2D       ×46  via "re:.*experts.*"
      model.layers.{1..46}.mlp.experts.{0..63}                  ExpertMLPWithGate  ×2,944  via "re:.*experts.*"
      model.layers.{1..46}.mlp.{experts,shared_experts}.act_fn  SiLUActivation        ×92  via "re:.*experts.*"
      model.layers.{1..46}.mlp.shared_experts                   Glm4MoeLiteMLP        ×46  via "re:.*experts.*"

    Ignored: 1 module
      lm_head  Linear    by "lm_head" (matched "Linear")

    Targets (compressed-tensors records each module for its first matching target):
      Linear  recorded for 9,209 modules
      re:.*experts.*  recorded for 3,128 modules
    "
  `);
  expect(r.stderr).toMatchInlineSnapshot(`
    "
    <command line>:1:49: warning ignore-without-effect: The ignore entry "re:.*mlp.gate$" changes nothing: it matches 46 modules (model.layers.{1..46}.mlp.gate), but no target matches them (they are "Glm4MoeLiteTopkRouter", not nn.Linear or nn.Embedding subclasses).
      |
    1 | Linear re:.*experts.* --ignore lm_head --ignore re:.*mlp.gate$
      |                                                 ^^^^^^^^^^^^^^

    <command line>:1:8: warning target-without-scheme: The target "re:.*experts.*" matches 3,128 modules that receive no scheme: model.layers.{1..46}.mlp.experts (LinearExperts2D), model.layers.{1..46}.mlp.experts.{0..63} (ExpertMLPWithGate), model.layers.{1..46}.mlp.{experts,shared_experts}.act_fn (SiLUActivation), and 46 more. Only nn.Linear and nn.Embedding subclasses (and attention modules, for activation or kv-cache schemes) are quantized, and compressed-tensors passes over the rest without a word.
      |
    1 | Linear re:.*experts.* --ignore lm_head --ignore re:.*mlp.gate$
      |        ^^^^^^^^^^^^^^

    0 errors, 2 warnings
    "
  `);
});

it('match exits 1 on an invalid regex and 2 on bad usage', async () => {
  expect((await run('match', 're:(', '--model', LLAMA)).code).toBe(1);
  expect((await run('match', '--model', LLAMA)).code).toBe(2);
  expect((await run('modules', '--model', 'does/not/exist.json')).code).toBe(2);
  expect((await run('modules', '--model', LLAMA, '--format', 'yaml')).code).toBe(2);
});

it('modules --filter that matches nothing says why and suggests the full name', async () => {
  const r = await run('modules', '--model', GLM, '--filter', 'mlp.gate');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^0 of 943 modules /);
  expect(r.stderr).toBe(
    'quantc: modules: no module matches "mlp.gate". A plain pattern is a full module name or a class name; use "re:" for a regex. Did you mean "model.layers.1.mlp.gate" or "re:.*\\.mlp\\.gate$"?\n',
  );
  const cls = await run('modules', '--model', GLM, '--filter', 'Linaer');
  expect(cls.stderr).toContain('Did you mean "Linear"?');
});

it('counts in modules and match use thousands separators', async () => {
  const r = await run('match', 'Linear', '--model', GLM);
  expect(r.stdout).toMatch(/^Receive a scheme: 9,209 modules\n/);
  expect(r.stdout).toContain('×8,832');
  expect(r.stdout).toContain('Linear  recorded for 9,209 modules');
});

it('a model folder without config.json is unreadable input (exit 2, one line), as in plan', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(`${tmpdir()}/quantc-empty-model-`);
  for (const command of ['modules', 'match']) {
    const r = await run(command, ...(command === 'match' ? ['Linear'] : []), '--model', dir);
    expect(r.code, command).toBe(2);
    expect(r.stderr, command).toMatch(/^quantc: [a-z]+: The folder "[^"]+" has no config\.json; [^\n]+\n$/);
  }
});
