import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { cudaSessionError } from '../src/execute/runtime.js';
import { DATAFREE, parseSafetensors, readRefTensors, serializeSafetensors, unpackModel } from './execute/fixtures.js';
import { memoryIo } from './memory-io.js';


describe('quantc apply', () => {
  test('runs llm-compressor\'s own recipe.yaml through the planner and matches its checkpoint', async () => {
    for (const [model, scheme] of [
      ['glm4_moe_lite', 'NVFP4A16'],
      ['llama', 'FP8_BLOCK'],
      // Stored in mixtral's original layout (block_sparse_moe.experts.E.w1/w2/w3), planned with transformers 5's names.
      ['mixtral', 'W4A16'],
      // Per-expert gate/up/down_proj as transformers 5 saves olmoe; phimoe in the original layout (block_sparse_moe.gate,
      // experts.E.w1/w2/w3); granitemoe's fused block_sparse_moe.input_linear / output_linear split per expert.
      ['olmoe', 'W4A16'],
      ['phimoe', 'W4A16'],
      ['granitemoe', 'W4A16'],
    ] as const) {
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
      const io = memoryIo(cwd);
      const refDir = join(DATAFREE, model, scheme);
      const code = await main(['apply', join(refDir, 'recipe.yaml'), '--model', modelDir, '--out', 'out'], io);
      expect(io.err.join('')).toMatch(/Quantizing \d+ modules/);
      expect(code).toBe(0);
      expect(io.out.join('')).toMatch(/Wrote out in [\d.]+ s\n {2}weights {6}[\d.]+ [kM]B -> [\d.]+ kB \([\d.]+x smaller\)\n {2}modules {6}\d+ quantized, \d+ ignored\n/);
      const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      const ref = await readRefTensors(refDir);
      expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [name, r] of ref) expect(Buffer.compare(Buffer.from(got.get(name)!.bytes), Buffer.from(r.bytes)), name).toBe(0);
      expect(await readFile(join(cwd, 'out', 'config.json'), 'utf8')).toBe(await readFile(join(refDir, 'config.json'), 'utf8'));
      expect(await readFile(join(cwd, 'out', 'recipe.yaml'), 'utf8')).toBe(await readFile(join(refDir, 'recipe.yaml'), 'utf8'));
    }
  });

  test('a .qr recipe gives the same checkpoint as llm-compressor', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'glm4_moe_lite', 'base'));
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    await writeFile(
      join(cwd, 'r.qr'),
      'recipe "glm-nvfp4a16" version "1.0.0"\n\nstage quant {\n  QuantizationModifier {\n    targets = [Linear]\n    scheme  = NVFP4A16\n    ignore  = ["lm_head", re".*mlp\\.gate$"]\n  }\n}\n',
    );
    const io = memoryIo(cwd);
    expect(await main(['apply', 'r.qr', '--model', modelDir, '--out', 'out'], io)).toBe(0);
    const refDir = join(DATAFREE, 'glm4_moe_lite', 'NVFP4A16');
    const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    const ref = await readRefTensors(refDir);
    expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
    for (const [name, r] of ref) expect(Buffer.compare(Buffer.from(got.get(name)!.bytes), Buffer.from(r.bytes)), name).toBe(0);
    expect(await readFile(join(cwd, 'out', 'config.json'), 'utf8')).toBe(await readFile(join(refDir, 'config.json'), 'utf8'));
  });

  test('a saved plan runs, and is refused once the model config changed', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    const recipe = join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml');
    expect(await main(['plan', recipe, '--model', modelDir, '--save', join(cwd, 'plan.json')], memoryIo(cwd))).toBe(0);
    expect(await main(['apply', 'plan.json', '--out', 'first'], memoryIo(cwd))).toBe(0);
    expect(await readdir(join(cwd, 'first'))).toContain('model.safetensors');
    const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(modelDir, 'config.json'), JSON.stringify({ ...config, rms_norm_eps: 1e-5 }, null, 2));
    const io = memoryIo(cwd);
    expect(await main(['apply', 'plan.json', '--out', 'second'], io)).toBe(1);
    expect(io.err.join('')).toContain("error apply-stale-plan: The saved plan no longer matches: the model's config.json changed");
    expect(await readdir(cwd)).toEqual(['first', 'plan.json']);
  });

  test('a saved plan records its recipe and model beside it, so it applies from any folder; a JSON recipe applies as a recipe', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const work = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    await mkdir(join(work, 'plans'));
    const recipe = join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml');
    expect(await main(['plan', recipe, '--model', modelDir, '--save', 'plans/plan.json'], memoryIo(work))).toBe(0);
    const saved = JSON.parse(await readFile(join(work, 'plans', 'plan.json'), 'utf8')) as { recipe: { path: string }; model: { id: string } };
    expect(saved.recipe.path).toBe(relative(join(work, 'plans'), recipe));
    expect(saved.model.id).toBe(relative(join(work, 'plans'), modelDir));
    const elsewhere = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    expect(await main(['apply', join(work, 'plans', 'plan.json'), '--out', 'out'], memoryIo(elsewhere))).toBe(0);
    expect(await readdir(join(elsewhere, 'out'))).toContain('model.safetensors');

    await writeFile(join(elsewhere, 'recipe.json'), JSON.stringify({ quant_stage: { quant_modifiers: { QuantizationModifier: { targets: ['Linear'], scheme: 'W8A8', ignore: ['lm_head'] } } } }));
    expect(await main(['apply', 'recipe.json', '--model', modelDir, '--out', 'from-json'], memoryIo(elsewhere))).toBe(0);
    const a = parseSafetensors(new Uint8Array(await readFile(join(elsewhere, 'out', 'model.safetensors'))));
    const b = parseSafetensors(new Uint8Array(await readFile(join(elsewhere, 'from-json', 'model.safetensors'))));
    for (const [name, t] of a) expect(Buffer.compare(Buffer.from(t.bytes), Buffer.from(b.get(name)!.bytes)), name).toBe(0);
  });

  test("a killed run's temporary folder is removed by the next run into the same --out, which says so", async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    // A pid that no process has: the run that made it is gone.
    await mkdir(join(cwd, '.out.quantc-tmp-999999999'));
    await writeFile(join(cwd, '.out.quantc-tmp-999999999', 'model.safetensors'), 'partial');
    const io = memoryIo(cwd);
    expect(await main(['apply', join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml'), '--model', modelDir, '--out', 'out'], io)).toBe(0);
    expect(io.err.join('')).toContain(`note: removed ${join(cwd, '.out.quantc-tmp-999999999')}, left by an earlier run into out that was killed before it finished`);
    expect(await readdir(cwd)).toEqual(['out']);
  });

  test('a CUDA session that fails after one has loaded is the graph\'s failure, not a missing provider', () => {
    expect(cudaSessionError('Load model failed\nmore', 'layers_0_22', 1, true)).toBe('onnxruntime could not load graph layers_0_22 on cuda:1 (Load model failed)');
    expect(cudaSessionError('libcudnn.so.9: cannot open shared object file', 'probe', undefined, false)).toBe(
      'the CUDA execution provider is not available (libcudnn.so.9: cannot open shared object file); run `npm run setup:cuda` on a machine with CUDA 13 and cuDNN 9, or use --device cpu',
    );
  });

  // Where the CUDA provider is installed (the GPU machine), this failure cannot be provoked.
  const cudaProvider = join(fileURLToPath(new URL('../node_modules/onnxruntime-node/bin/napi-v6/linux/x64/', import.meta.url)), 'libonnxruntime_providers_cuda.so');
  test.skipIf(existsSync(cudaProvider))('without the CUDA provider, --device cuda gives the diagnostic alone, before any work', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    const io = memoryIo(cwd);
    expect(await main(['apply', join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml'), '--model', modelDir, '--out', 'out', '--device', 'cuda'], io)).toBe(1);
    expect(io.err.join('')).toMatch(/^error apply-failed: the CUDA execution provider is not available \(.*\); run `npm run setup:cuda` on a machine with CUDA 13 and cuDNN 9, or use --device cpu\n\n1 error, 0 warnings\n$/);
    expect(await readdir(cwd)).toEqual([]);
  });

  test('a truncated shard is a diagnostic before anything runs, not an internal error', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const file = join(modelDir, 'model.safetensors');
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    const io = memoryIo(cwd);
    expect(await main(['apply', join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml'), '--model', modelDir, '--out', 'out'], io)).toBe(1);
    expect(io.err.join('')).toMatch(/error safetensors-invalid-header: ".*model\.safetensors" is not a valid safetensors file: its tensors end at byte \d+ but the file has \d+ bytes \(truncated\?\)\./);
    expect(await readdir(cwd)).toEqual([]);
  });

  test('quantizing lm_head of a model with tied embeddings unties them, as llm-compressor does', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    // The tiny llama with tie_word_embeddings: lm_head's weight is stored once, as the embedding.
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(modelDir, 'model.safetensors'))));
    tensors.delete('lm_head.weight');
    await writeFile(join(modelDir, 'model.safetensors'), serializeSafetensors(tensors));
    const config = JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(modelDir, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: true }, null, 2));

    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    await writeFile(join(cwd, 'r.yaml'), 'quant_stage:\n  quant_modifiers:\n    QuantizationModifier: {targets: [Linear], scheme: W8A8}\n');
    const io = memoryIo(cwd);
    expect(await main(['apply', 'r.yaml', '--model', modelDir, '--out', 'out'], io)).toBe(0);
    const out = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    expect(out.get('lm_head.weight')!.dtype).toBe('I8');
    expect(out.get('lm_head.weight_scale')!.shape).toEqual([128, 1]);
    expect(Buffer.compare(Buffer.from(out.get('model.embed_tokens.weight')!.bytes), Buffer.from(tensors.get('model.embed_tokens.weight')!.bytes))).toBe(0);
    expect((JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as { tie_word_embeddings: boolean }).tie_word_embeddings).toBe(false);
  });

  test('an already quantized checkpoint is refused, naming what it is', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    const recipe = join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml');
    const io = memoryIo(cwd);
    expect(await main(['apply', recipe, '--model', await unpackModel(join(DATAFREE, 'llama', 'W4A16')), '--out', 'out'], io)).toBe(1);
    expect(io.err.join('')).toContain('error model-already-quantized: ');
    expect(io.err.join('')).toContain('is already quantized (compressed-tensors, pack-quantized): its safetensors hold quantized codes');
    expect(await readdir(cwd)).toEqual([]);
  });

  test('a NaN in a weight is an error naming the module, and nothing is written', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const file = join(modelDir, 'model.safetensors');
    const buf = Buffer.from(await readFile(file));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    buf.writeUInt16LE(0x7fc0, 8 + n + header['model.layers.1.mlp.down_proj.weight']!.data_offsets[0] + 20);
    await writeFile(file, buf);
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    const io = memoryIo(cwd);
    expect(await main(['apply', join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml'), '--model', modelDir, '--out', 'out'], io)).toBe(1);
    expect(io.err.join('')).toContain('error apply-failed: model.layers.1.mlp.down_proj: the weight holds non-finite values (NaN or infinity)');
    expect(await readdir(cwd)).toEqual([]);
    // GPTQ reads the weight before solving it: the same error, before anything is written.
    await writeFile(join(modelDir, 'tokenizer.json'), await readFile(join(DATAFREE, '..', 'calibration', 'tokenizer.json')));
    await writeFile(join(cwd, 'gptq.yaml'), 'quant_stage:\n  quant_modifiers:\n    GPTQModifier: {targets: [Linear], scheme: W4A16, ignore: [lm_head]}\n');
    const gptq = memoryIo(cwd);
    expect(await main(['apply', 'gptq.yaml', '--model', modelDir, '--out', 'out', '--data', join(DATAFREE, '..', 'calibration', 'text.txt'), '--seq-len', '32'], gptq)).toBe(1);
    expect(gptq.err.join('')).toMatch(/error apply-failed: model\.layers\.\d\.[a-z_.]+: (the weight holds non-finite values|its calibration inputs overflowed)/);
    expect(await readdir(cwd)).toEqual(['gptq.yaml']);
  });

  test('a recipe with an algorithm apply does not implement is refused with a diagnostic', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    await writeFile(
      join(cwd, 'sq.yaml'),
      'quant_stage:\n  quant_modifiers:\n    SpinQuantModifier: {}\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16_ASYM\n      ignore: [lm_head]\n',
    );
    const io = memoryIo(cwd);
    expect(await main(['apply', 'sq.yaml', '--model', modelDir, '--out', 'out'], io)).toBe(1);
    expect(io.err.join('')).toContain('error apply-unsupported: SpinQuantModifier is not supported by apply: it runs QuantizationModifier recipes');
    expect(await readdir(cwd)).toEqual(['sq.yaml']);
  });

  test('usage errors exit 2 with one line', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    const io = memoryIo(cwd);
    expect(await main(['apply', 'r.yaml', '--model', 'm'], io)).toBe(2);
    expect(io.err.join('')).toBe('quantc: apply: --out DIR is required.\n');
    const help = memoryIo(cwd);
    expect(await main(['apply', '--help'], help)).toBe(0);
    expect(help.out.join('')).toContain('Usage: quantc apply RECIPE|PLAN --model DIR|ID --out DIR');
    // Output paths are checked before any work: a file where a folder must be, a missing --coverage folder.
    await writeFile(join(cwd, 'afile'), 'x');
    const parentIsFile = memoryIo(cwd);
    expect(await main(['apply', 'r.yaml', '--model', 'm', '--out', 'afile/out'], parentIsFile)).toBe(2);
    expect(parentIsFile.err.join('')).toBe(`quantc: apply: ${join(cwd, 'afile', 'out')}: ${join(cwd, 'afile')} is a file, not a folder\n`);
    const coverage = memoryIo(cwd);
    expect(await main(['apply', 'r.yaml', '--model', 'm', '--out', 'out', '--coverage', 'nowhere/c.json'], coverage)).toBe(2);
    expect(coverage.err.join('')).toBe(`quantc: apply: --coverage: the folder ${join(cwd, 'nowhere')} does not exist\n`);
    // A negative number is a value, checked by the flag's own rule.
    const negative = memoryIo(cwd);
    expect(await main(['apply', 'r.yaml', '--model', 'm', '--out', 'o', '--samples', '-1'], negative)).toBe(2);
    expect(negative.err.join('')).toBe('quantc: apply: --samples must be a positive integer, not "-1".\n');
  });
});
