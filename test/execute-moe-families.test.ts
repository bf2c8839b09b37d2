import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { DATAFREE, parseSafetensors, readRefTensors, unpackModel } from './execute/fixtures.js';
import { memoryIo } from './memory-io.js';

/**
 * gpt-oss (fused experts with biases, gate/up interleaved) and Llama 4 as
 * Llama4ForConditionalGeneration (vision tower, projector, language_model;
 * the ignore list of llm-compressor's Llama 4 example): llm-compressor's own
 * recipe.yaml through the planner, every tensor and the config equal to its
 * data-free checkpoint.
 */
describe('quantc apply matches llm-compressor on gpt-oss and Llama 4', () => {
  for (const model of ['gpt_oss', 'llama4']) {
    test(`${model} W4A16`, async () => {
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-cli-'));
      const io = memoryIo(cwd);
      const refDir = join(DATAFREE, model, 'W4A16');
      const code = await main(['apply', join(refDir, 'recipe.yaml'), '--model', modelDir, '--out', 'out'], io);
      expect(io.err.join(''), io.err.join('')).toMatch(/Quantizing \d+ modules/);
      expect(code).toBe(0);
      // The checkpoint holds exactly the tree's parameters (vision tower and projector included).
      expect(io.err.join(""), io.err.join("")).not.toMatch(/checkpoint-/);
      const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      const ref = await readRefTensors(refDir);
      expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [name, r] of ref) {
        expect({ name, dtype: got.get(name)!.dtype, shape: got.get(name)!.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
        expect(Buffer.compare(Buffer.from(got.get(name)!.bytes), Buffer.from(r.bytes)), name).toBe(0);
      }
      expect(await readFile(join(cwd, 'out', 'config.json'), 'utf8')).toBe(await readFile(join(refDir, 'config.json'), 'utf8'));
    });
  }
});
