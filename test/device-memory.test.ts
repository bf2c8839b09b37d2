import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test, vi } from 'vitest';
import { main } from '../src/cli/main.js';
import { DeviceMemoryError, deviceMemoryError, GraphRuntime } from '../src/execute/runtime.js';
import { CALIBRATION, modelWithTokenizer } from './calibrate-refs.js';
import { memoryIo } from './memory-io.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const ALLOCATION = 'Non-zero status code returned while running MatMul node. Name:\'n12\' Status Message: Failed to allocate memory for requested buffer of size 1073741824\nstack…';

test('a CUDA allocation failure becomes an error that says what to lower; anything else stays as it was', () => {
  const e = deviceMemoryError(new Error(ALLOCATION), 'cuda', 'running graph layers_0_22');
  expect(e).toBeInstanceOf(DeviceMemoryError);
  expect((e as Error).message).toBe(
    "the GPU ran out of memory running graph layers_0_22 (Non-zero status code returned while running MatMul node. Name:'n12' Status Message: Failed to allocate memory for requested buffer of size 1073741824); lower QUANTC_GRAPH_WEIGHT_MB (the float32 megabytes of weights one graph may hold, now 16384) or the batch size, or run on a card with more memory",
  );
  expect(deviceMemoryError(new Error('CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED'), 'cuda', 'x')).toBeInstanceOf(DeviceMemoryError);
  const other = new Error('Invalid rank for input: hidden');
  expect(deviceMemoryError(other, 'cuda', 'x')).toBe(other);
  const cpu = new Error(ALLOCATION);
  expect(deviceMemoryError(cpu, 'cpu', 'x')).toBe(cpu);
});

test('eval reports the card running out of memory as forward-device-memory, apply as apply-failed, with nothing left behind', async () => {
  vi.spyOn(GraphRuntime.prototype, 'run').mockRejectedValue(new DeviceMemoryError('the GPU ran out of memory running graph layer_0 (…); lower QUANTC_GRAPH_WEIGHT_MB'));
  const dir = await modelWithTokenizer('llama');
  const io = memoryIo(dir);
  expect(await main(['eval', '--model', '.', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32', '-q'], io)).toBe(1);
  expect(io.err.join('')).toMatch(/^error forward-device-memory: the GPU ran out of memory running graph layer_0 \(…\); lower QUANTC_GRAPH_WEIGHT_MB\n/);
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
  // FP8 with static activations: calibration runs the layer graphs.
  await writeFile(join(cwd, 'recipe.yaml'), 'quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      targets: [Linear]\n      scheme: FP8\n      ignore: [lm_head]\n');
  const apply = memoryIo(cwd);
  expect(await main(['apply', 'recipe.yaml', '--model', dir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'], apply)).toBe(1);
  expect(apply.err.join('')).toContain('error apply-failed: the GPU ran out of memory running graph layer_0');
  expect(await readdir(cwd)).toEqual(['recipe.yaml']);
});
