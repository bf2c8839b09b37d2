/**
 * The built-in GPTQ recipes (one with SmoothQuant first) apply end to end on tiny checkpoints of their
 * own architectures (every quantized layer at least one group wide), and
 * the result evaluates close to the original model.
 */
import { copyFile, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { CALIBRATION, modelWithTokenizer } from '../../calibrate-refs.js';
import { parseSafetensors, unpackModel } from '../fixtures.js';
import { memoryIo } from '../../memory-io.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TEXT = join(CALIBRATION, 'text.txt');


async function builtinModel(type: string): Promise<string> {
  const dir = await unpackModel(join(ROOT, 'test/fixtures/builtin-models', type));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(CALIBRATION, f), join(dir, f));
  return dir;
}

async function perplexity(model: string, cwd: string): Promise<number> {
  const io = memoryIo(cwd);
  expect(await main(['eval', '--model', model, '--data', TEXT, '--seq-len', '32'], io)).toBe(0);
  return Number(/perplexity: ([\d.]+)/.exec(io.out.join(''))![1]);
}

describe('built-in GPTQ recipes', () => {
  for (const [recipe, model] of [
    ['llama3-8b-w4a16-gptq', () => modelWithTokenizer('llama')],
    ['llama3-8b-w8a8-smoothquant-gptq', () => modelWithTokenizer('llama')],
    ['deepseek-v3-w4a16-gptq', () => builtinModel('deepseek_v3')],
  ] as const) {
    test(`${recipe} applies to a tiny model of its architecture`, async () => {
      const dir = await model();
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-builtin-'));
      const io = memoryIo(cwd);
      const code = await main(['apply', join(ROOT, 'recipes', `${recipe}.qr`), '--model', dir, '--out', 'out', '--data', TEXT, '--seq-len', '32'], io);
      expect(io.err.join(''), io.err.join('')).not.toMatch(/ error [a-z-]+:|warning (gptq|apply|smoothquant)-/);
      expect(code).toBe(0);
      expect(io.out.join('')).toMatch(/gptq {9}\d+ modules in 2 layers from \d+ Hessians/);
      const tensors = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      const quantized = io.out.join('').match(/modules {6}(\d+) quantized/)![1];
      // W4A16 packs int4 into int32 words; W8A8 stores int8 codes.
      expect([...tensors.keys()].filter((k) => k.endsWith('.weight_packed') || (k.endsWith('.weight') && tensors.get(k)!.dtype === 'I8'))).toHaveLength(Number(quantized));
      const before = await perplexity(dir, cwd);
      const after = await perplexity(join(cwd, 'out'), cwd);
      expect(Math.abs(after / before - 1)).toBeLessThan(0.05);
    });
  }
});
