/**
 * The CPU weight pass in worker threads writes what the main thread writes.
 * Workers run built code only (the worker is a .js file), so this test runs
 * the built apply (`npm run build`; `npm test` builds first) against the
 * sources' in-thread pass.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { applyJob } from '../../src/execute/apply.js';
import type { ApplyJob, ApplySummary } from '../../src/execute/types.js';
import { DATAFREE, parseSafetensors, readRefTensors, serializeSafetensors, unpackModel } from './fixtures.js';
import { memoryIo } from '../memory-io.js';
import { mkdtemp } from 'node:fs/promises';
import { writeFile as writeText } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { main as sourceMain } from '../../src/cli/main.js';
import { CALIBRATION, modelWithTokenizer } from '../calibrate-refs.js';
import { referenceJob } from './job.js';

const BUILT = fileURLToPath(new URL('../../dist/src/execute/apply.js', import.meta.url));
const built = existsSync(BUILT) && existsSync(join(BUILT, '..', 'loop-worker.js'));
const builtApply = async (job: ApplyJob): Promise<ApplySummary> => ((await import(BUILT)) as { applyJob: typeof applyJob }).applyJob(job);
const builtMain = async (...args: Parameters<typeof sourceMain>): Promise<number> => ((await import(join(BUILT, '..', '..', 'cli', 'main.js'))) as { main: typeof sourceMain }).main(...args);

describe.skipIf(!built)('apply with worker threads (built code)', () => {
  for (const [model, scheme] of [
    ['llama', 'W4A16'],
    ['llama', 'W8A8'],
    ['llama', 'FP8_DYNAMIC'],
    ['llama', 'MXFP4'],
    ['llama', 'FP8_BLOCK'],
    ['glm4_moe_lite', 'NVFP4A16'],
    ['llama_fp16', 'FP8_DYNAMIC'],
  ] as const) {
    test(`${model} ${scheme}: three workers write what the main thread writes`, async () => {
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const here = await referenceJob(model, scheme, modelDir);
      const there = await referenceJob(model, scheme, modelDir);
      await applyJob({ ...here.job, cpuWorkers: 0 });
      const summary = await builtApply({ ...there.job, cpuWorkers: 3 });
      // FP8 blocks too, where no padding is needed (the tiny llama's padded blocks stay on this thread).
      expect(summary.unitsPerRuntime?.length).toBe(3);
      const files = (await readdir(here.job.outDir)).sort();
      expect((await readdir(there.job.outDir)).sort()).toEqual(files);
      for (const f of files) expect(Buffer.compare(await readFile(join(here.job.outDir, f)), await readFile(join(there.job.outDir, f))), f).toBe(0);
    });
  }

  // Several devices quantize from a worker thread each (a run blocks the thread that issues it): graphs, loops, NVFP4's
  // fused units, and same-shaped weights stacked into one run (whole weights per run, as on CUDA).
  for (const [model, scheme, cpuLoops, chunkElements] of [
    ['llama', 'W4A16_ASYM', false, undefined],
    ['llama', 'W4A16', false, null],
    ['llama', 'FP8_BLOCK', false, undefined],
    ['glm4_moe_lite', 'NVFP4A16', true, undefined],
  ] as const) {
    test(`${model} ${scheme} (${cpuLoops ? 'loops' : chunkElements === null ? 'stacked graphs' : 'graphs'}) on three CPU runtimes, a worker thread each, writes what one runtime writes here`, async () => {
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const one = await referenceJob(model, scheme, modelDir);
      const three = await referenceJob(model, scheme, modelDir);
      const settings = { cpuLoops, ...(chunkElements === null ? { chunkElements } : {}) };
      await applyJob({ ...one.job, ...settings });
      const summary = await builtApply({ ...three.job, ...settings, devices: [{ device: 'cpu' }, { device: 'cpu' }, { device: 'cpu' }] });
      expect(summary.deviceThreads).toBe(true);
      expect(summary.unitsPerRuntime).toHaveLength(3);
      expect(summary.unitsPerRuntime!.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      const files = (await readdir(one.job.outDir)).sort();
      expect((await readdir(three.job.outDir)).sort()).toEqual(files);
      for (const f of files) expect(Buffer.compare(await readFile(join(one.job.outDir, f)), await readFile(join(three.job.outDir, f))), f).toBe(0);
    });
  }

  test('on CUDA, round-to-nearest of the checkpoint weights runs in the worker threads by default (same bytes; the GPU is never used)', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'glm4_moe_lite', 'base'));
    const cpu = await referenceJob('glm4_moe_lite', 'NVFP4A16', modelDir);
    const cuda = await referenceJob('glm4_moe_lite', 'NVFP4A16', modelDir);
    await applyJob({ ...cpu.job, cpuWorkers: 0 });
    // Every unit is one the loops take, so no CUDA session is ever created: this runs where no GPU is.
    const summary = await builtApply({ ...cuda.job, device: 'cuda', cpuWorkers: 3 });
    expect(summary.cpuThreads).toBe(3);
    expect(summary.unitsPerRuntime).toHaveLength(3);
    const files = (await readdir(cpu.job.outDir)).sort();
    expect((await readdir(cuda.job.outDir)).sort()).toEqual(files);
    for (const f of files) expect(Buffer.compare(await readFile(join(cpu.job.outDir, f)), await readFile(join(cuda.job.outDir, f))), f).toBe(0);
  });

  // Fused 3-D experts, stored [in, out] (gpt-oss, Llama 4) or in the other layout (Qwen3-VL-MoE): each expert's slab read and its projection taken in the workers.
  for (const model of ['gpt_oss', 'llama4', 'qwen3_vl_moe']) {
    test(`${model} W4A16 through the built CLI: fused experts sliced in the workers, llm-compressor's bytes`, async () => {
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
      const io = memoryIo(cwd);
      const refDir = join(DATAFREE, model, 'W4A16');
      expect(await builtMain(['apply', join(refDir, 'recipe.yaml'), '--model', modelDir, '--out', 'out', '-q'], io), io.err.join('')).toBe(0);
      const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      const ref = await readRefTensors(refDir);
      expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [name, r] of ref) expect(Buffer.compare(Buffer.from(got.get(name)!.bytes), Buffer.from(r.bytes)), name).toBe(0);
    });
  }

  // NVFP4's gate and up of one expert are one unit: their slab is read once in the worker.
  for (const model of ['gpt_oss', 'llama4']) {
    test(`${model} NVFP4A16 through the built CLI: the workers write what the main thread writes`, async () => {
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const recipe = (await readFile(join(DATAFREE, model, 'W4A16', 'recipe.yaml'), 'utf8')).replace('scheme: W4A16', 'scheme: NVFP4A16');
      const outs: string[] = [];
      for (const run of [sourceMain, builtMain]) {
        const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
        await writeText(join(cwd, 'recipe.yaml'), recipe);
        const io = memoryIo(cwd);
        expect(await run(['apply', 'recipe.yaml', '--model', modelDir, '--out', 'out', '-q'], io), io.err.join('')).toBe(0);
        outs.push(join(cwd, 'out', 'model.safetensors'));
      }
      expect(Buffer.compare(await readFile(outs[0]!), await readFile(outs[1]!))).toBe(0);
    });
  }

  // GPTQ's solved weights travel to the workers with their modules; SmoothQuant's smoothed weights are copied there.
  for (const [what, inWorkers, modifiers] of [
    ['GPTQ W4A16', 14, '    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: [lm_head]\n'],
    // Group activation order: its units stay on the main thread, the rest (lm_head's neighbours) go to the workers.
    ['GPTQ W4A16 with group activation ordering, and FP8 for the MLP', 6, '    GPTQModifier:\n      config_groups:\n        group_0:\n          targets: ["re:.*self_attn.*_proj$"]\n          weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 128, actorder: group}\n    QuantizationModifier:\n      targets: ["re:.*mlp.*_proj$"]\n      scheme: FP8_DYNAMIC\n'],
    ['SmoothQuant then W8A8', 14, '    SmoothQuantModifier:\n      smoothing_strength: 0.8\n    QuantizationModifier:\n      targets: [Linear]\n      scheme: W8A8\n      ignore: [lm_head]\n'],
  ] as const) {
    test(`${what} through the built CLI: the workers write what the main thread writes`, async () => {
      const model = await modelWithTokenizer('llama');
      const outs: string[] = [];
      for (const run of [sourceMain, builtMain]) {
        const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
        await writeText(join(cwd, 'recipe.yaml'), `quant_stage:\n  quant_modifiers:\n${modifiers}`);
        const io = memoryIo(cwd);
        expect(await run(['apply', 'recipe.yaml', '--model', model, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32', '--format', 'json', '-q'], io), io.err.join('')).toBe(0);
        // Every unit the loops can take went to a worker.
        if (run === builtMain) expect((JSON.parse(io.out.join('')) as { unitsPerRuntime?: number[] }).unitsPerRuntime?.reduce((a, b) => a + b, 0)).toBe(inWorkers);
        outs.push(join(cwd, 'out'));
      }
      const [here, there] = outs as [string, string];
      const files = (await readdir(here)).sort();
      expect((await readdir(there)).sort()).toEqual(files);
      for (const f of files) expect(Buffer.compare(await readFile(join(here, f)), await readFile(join(there, f))), f).toBe(0);
    });
  }

  test('--cpu-threads sets how many workers quantize (0: the main thread); a bad count is a usage error', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const recipe = join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml');
    for (const [threads, runtimes] of [
      ['3', 3],
      ['0', undefined],
    ] as const) {
      const io = memoryIo(await mkdtemp(join(tmpdir(), 'quantc-cli-')));
      expect(await builtMain(['apply', recipe, '--model', modelDir, '--out', 'out', '--cpu-threads', threads, '--format', 'json', '-q'], io), io.err.join('')).toBe(0);
      expect((JSON.parse(io.out.join('')) as { unitsPerRuntime?: number[] }).unitsPerRuntime?.length).toBe(runtimes);
    }
    const io = memoryIo(await mkdtemp(join(tmpdir(), 'quantc-cli-')));
    expect(await builtMain(['apply', recipe, '--model', modelDir, '--out', 'out', '--cpu-threads', 'many'], io)).toBe(2);
    expect(io.err.join('')).toContain('apply: --cpu-threads must be a non-negative integer, not "many".');
  });

  test('a worker that stops before answering fails its task with a LoopWorkerError (apply reports it as apply-failed)', async () => {
    const { startLoopWorkers: start, LoopWorkerError: Stopped } = (await import(join(BUILT, '..', 'loop-workers.js'))) as typeof import('../../src/execute/loop-workers.js');
    const [worker] = start(1, 2 ** 20);
    await worker!.terminate();
    await expect(worker!.quantize([], [])).rejects.toBeInstanceOf(Stopped);
    await expect(worker!.quantize([], [])).rejects.toThrow(/^a weight-pass worker thread stopped \(exit code \d+\)$/);
  });

  test('a NaN found in a worker stops the run with the same message', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const file = join(modelDir, 'model.safetensors');
    const tensors = parseSafetensors(new Uint8Array(await readFile(file)));
    const name = [...tensors.keys()].find((n) => n.endsWith('layers.1.mlp.down_proj.weight'))!;
    const t = tensors.get(name)!;
    const bytes = new Uint8Array(t.bytes);
    // bf16 NaN (0x7fc0) in the middle of the weight.
    bytes[bytes.length >> 1] = 0xc0;
    bytes[(bytes.length >> 1) + 1] = 0x7f;
    tensors.set(name, { ...t, bytes });
    await writeFile(file, serializeSafetensors(tensors));
    const { job } = await referenceJob('llama', 'FP8_DYNAMIC', modelDir);
    await expect(builtApply({ ...job, cpuWorkers: 2 })).rejects.toThrow(/model\.layers\.1\.mlp\.down_proj: the weight holds non-finite values \(NaN or infinity\)/);
    expect(existsSync(job.outDir)).toBe(false);
  });
});
