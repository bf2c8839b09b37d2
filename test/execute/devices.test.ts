/**
 * Device lists (`--device cuda:0,1`, `--gpus N`) and the weight pass spread
 * over several runtimes: parsing, the pool that lends runtimes to tensors,
 * and output byte-identical to one device (CPU runtimes standing in for GPUs).
 */
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { applyJob } from '../../src/execute/apply.js';
import { DeviceListError, formatDeviceList, parseDeviceList } from '../../src/execute/device-list.js';
import { RuntimePool } from '../../src/execute/runtime-pool.js';
import type { GraphRuntime } from '../../src/execute/runtime.js';
import { memoryIo } from '../memory-io.js';
import { DATAFREE, parseSafetensors, unpackModel } from './fixtures.js';
import { referenceJob } from './job.js';

describe('parseDeviceList', () => {
  test('cpu, cuda, one ordinal, lists and --gpus', () => {
    expect(parseDeviceList(undefined)).toEqual([{ device: 'cpu' }]);
    expect(parseDeviceList('cpu')).toEqual([{ device: 'cpu' }]);
    expect(parseDeviceList('cuda')).toEqual([{ device: 'cuda' }]);
    expect(parseDeviceList('cuda:1')).toEqual([{ device: 'cuda', deviceId: 1 }]);
    expect(parseDeviceList('cuda:0,1,3')).toEqual([0, 1, 3].map((deviceId) => ({ device: 'cuda', deviceId })));
    expect(parseDeviceList('cuda:2,cuda:0')).toEqual([2, 0].map((deviceId) => ({ device: 'cuda', deviceId })));
    expect(parseDeviceList(undefined, '4')).toEqual([0, 1, 2, 3].map((deviceId) => ({ device: 'cuda', deviceId })));
    expect(parseDeviceList('cuda', '2')).toEqual([0, 1].map((deviceId) => ({ device: 'cuda', deviceId })));
  });

  test('formats back as written', () => {
    for (const text of ['cpu', 'cuda', 'cuda:1', 'cuda:0,1,3']) expect(formatDeviceList(parseDeviceList(text))).toBe(text);
  });

  test.each([
    ['gpu', undefined, '--device must be cpu, cuda, cuda:N or a list of CUDA devices such as cuda:0,1, not "gpu"'],
    ['cuda:', undefined, 'not "cuda:"'],
    ['cuda:0,,1', undefined, '"" is not a CUDA device ordinal'],
    ['cuda:-1', undefined, '"-1" is not a CUDA device ordinal'],
    ['cuda:01', undefined, '"01" is not a CUDA device ordinal'],
    ['cuda:0,cpu', undefined, '"cpu" is not a CUDA device ordinal'],
    ['cuda:1,1', undefined, '--device names cuda:1 twice in "cuda:1,1"'],
    ['cpu:0', undefined, 'not "cpu:0"'],
    [undefined, '0', '--gpus must be a positive number of GPUs, not "0"'],
    [undefined, 'two', '--gpus must be a positive number of GPUs, not "two"'],
    [undefined, '1.5', '--gpus must be a positive number of GPUs, not "1.5"'],
    ['cpu', '2', '--gpus 2 already names the devices (cuda:0 to cuda:1); drop --device cpu'],
    ['cuda:0,1', '2', 'drop --device cuda:0,1'],
  ] as const)('rejects --device %s --gpus %s', (text, gpus, message) => {
    expect(() => parseDeviceList(text, gpus)).toThrow(DeviceListError);
    expect(() => parseDeviceList(text, gpus)).toThrow(message);
  });
});

describe('RuntimePool', () => {
  test('lends each runtime to one task at a time, the first free one in submission order', async () => {
    const runtimes = [{ id: 'a' }, { id: 'b' }] as unknown as GraphRuntime[];
    const pool = new RuntimePool(runtimes);
    const release: (() => void)[] = [];
    const log: string[] = [];
    const tasks = [0, 1, 2, 3].map((i) =>
      pool.run(async (rt) => {
        log.push(`${i}:${(rt as unknown as { id: string }).id}`);
        await new Promise<void>((resolve) => release.push(resolve));
        return i;
      }),
    );
    await new Promise((r) => setTimeout(r, 0));
    // Two runtimes: tasks 0 and 1 run, 2 and 3 wait.
    expect(log).toEqual(['0:a', '1:b']);
    release[1]!();
    await new Promise((r) => setTimeout(r, 0));
    expect(log).toEqual(['0:a', '1:b', '2:b']);
    release[0]!();
    await new Promise((r) => setTimeout(r, 0));
    expect(log).toEqual(['0:a', '1:b', '2:b', '3:a']);
    release[2]!();
    release[3]!();
    expect(await Promise.all(tasks)).toEqual([0, 1, 2, 3]);
    expect(pool.tasks).toEqual([2, 2]);
  });

  test('a failing task gives its runtime back', async () => {
    const pool = new RuntimePool([{} as GraphRuntime]);
    await expect(pool.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await pool.run(async () => 'next')).toBe('next');
  });
});

describe('apply over several devices', () => {
  // Graphs (asynchronous runs) and loops; NVFP4's fused units included.
  for (const [model, scheme, cpuLoops] of [
    ['llama', 'W4A16_ASYM', false],
    ['llama', 'FP8_DYNAMIC', true],
    ['llama', 'FP8_BLOCK', false],
    ['glm4_moe_lite', 'NVFP4A16', true],
    ['glm4_moe_lite', 'NVFP4A16', false],
  ] as const) {
    test(`${model} ${scheme} (${cpuLoops ? 'loops' : 'graphs'}) on three CPU runtimes writes what one writes`, async () => {
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const one = await referenceJob(model, scheme, modelDir);
      const three = await referenceJob(model, scheme, modelDir);
      await applyJob({ ...one.job, cpuLoops });
      const summary = await applyJob({ ...three.job, cpuLoops, devices: [{ device: 'cpu' }, { device: 'cpu' }, { device: 'cpu' }] });
      const units = summary.unitsPerRuntime!;
      expect(units).toHaveLength(3);
      // Graph runs wait on their reads: while one unit is read, the next free runtime takes another, so each gets some.
      if (!cpuLoops) expect(units.every((n) => n > 0), String(units)).toBe(true);
      const files = (await readdir(one.job.outDir)).sort();
      expect((await readdir(three.job.outDir)).sort()).toEqual(files);
      for (const f of files) expect(Buffer.compare(await readFile(join(one.job.outDir, f)), await readFile(join(three.job.outDir, f))), f).toBe(0);
    });
  }
});

describe('apply --weights-on', () => {
  test("cuda with weightsOn 'cpu' quantizes in the CPU loops on this thread where no worker runs, and writes the CPU's bytes", async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const cpu = await referenceJob('llama', 'W4A16', modelDir);
    const cuda = await referenceJob('llama', 'W4A16', modelDir);
    await applyJob(cpu.job);
    // Sources start no worker threads (built code only): the loops run here, and no CUDA session is created.
    const summary = await applyJob({ ...cuda.job, device: 'cuda', weightsOn: 'cpu' });
    expect(summary.cpuThreads).toBe(1);
    const files = (await readdir(cpu.job.outDir)).sort();
    expect((await readdir(cuda.job.outDir)).sort()).toEqual(files);
    for (const f of files) expect(Buffer.compare(await readFile(join(cpu.job.outDir, f)), await readFile(join(cuda.job.outDir, f))), f).toBe(0);
  });

  test('--weights-on with --device cpu runs on the CPU and says the flag changes nothing there', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    const io = memoryIo(cwd);
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    expect(await main(['apply', join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml'), '--model', modelDir, '--out', 'out', '--weights-on', 'device', '-q'], io), io.err.join('')).toBe(0);
    expect(io.err.join('')).toMatch(/^note: --weights-on chooses between the CPU and the GPUs; with --device cpu everything runs on the CPU$/m);
    expect(await readdir(join(cwd, 'out'))).toContain('model.safetensors');
  });

  test('an unknown --weights-on is a usage error (exit 2) before any work', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    const io = memoryIo(cwd);
    expect(await main(['apply', join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml'), '--model', join(DATAFREE, 'llama', 'base'), '--out', 'out', '--weights-on', 'gpu'], io)).toBe(2);
    expect(io.err.join('')).toMatch(/--weights-on/);
    expect(await readdir(cwd)).toEqual([]);
  });
});

/** `QUANTC_TEST_DEVICE=cuda:0,1` (or `cuda`) repeats llm-compressor's data-free references on those GPUs (after `npm run setup:cuda`). */
const TEST_DEVICES = process.env.QUANTC_TEST_DEVICE;

describe.skipIf(TEST_DEVICES === undefined || TEST_DEVICES === 'cpu')(`apply on ${TEST_DEVICES} writes llm-compressor's bytes`, () => {
  for (const [model, scheme] of [
    ['llama', 'W4A16'],
    ['llama', 'W4A16_ASYM'],
    ['llama', 'W8A8'],
    ['llama', 'FP8_DYNAMIC'],
    ['llama', 'FP8_BLOCK'],
    ['llama', 'MXFP4'],
    ['llama', 'NVFP4A16'],
    ['llama_fp16', 'FP8_DYNAMIC'],
    ['glm4_moe_lite', 'NVFP4A16'],
  ] as const) {
    test(`${model} ${scheme}`, async () => {
      const devices = parseDeviceList(TEST_DEVICES);
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const { job, ref } = await referenceJob(model, scheme, modelDir);
      // The GPUs' graphs, not the CPU loops that `weightsOn: 'auto'` would choose.
      await applyJob({ ...job, device: devices[0]!.device, devices, weightsOn: 'device' });
      const got = parseSafetensors(new Uint8Array(await readFile(join(job.outDir, 'model.safetensors'))));
      expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [name, r] of ref) expect(Buffer.compare(Buffer.from(got.get(name)!.bytes), Buffer.from(r.bytes)), name).toBe(0);
    });
  }
});

describe('apply --device / --gpus on the command line', () => {
  test.each([
    [['--device', 'gpu'], 'error apply-device: --device must be cpu, cuda, cuda:N or a list of CUDA devices such as cuda:0,1, not "gpu".'],
    [['--device', 'cuda:0,x'], 'error apply-device: --device must be cpu, cuda, cuda:N or a list of CUDA devices such as cuda:0,1, not "cuda:0,x" ("x" is not a CUDA device ordinal).'],
    [['--gpus', 'two'], 'error apply-device: --gpus must be a positive number of GPUs, not "two".'],
    [['--gpus', '2', '--device', 'cpu'], 'error apply-device: --gpus 2 already names the devices (cuda:0 to cuda:1); drop --device cpu.'],
  ])('%j is a usage error (exit 2) before any work', async (flags, message) => {
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
    const io = memoryIo(cwd);
    expect(await main(['apply', join(DATAFREE, 'llama', 'W8A8', 'recipe.yaml'), '--model', join(DATAFREE, 'llama', 'base'), '--out', 'out', ...flags], io)).toBe(2);
    expect(io.err.join('').split('\n')[0]).toBe(message);
    expect(await readdir(cwd)).toEqual([]);
  });
});
