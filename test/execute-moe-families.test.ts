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
 * the ignore list of llm-compressor's Llama 4 example), Llava and Mistral 3
 * (transformers 5 holds their language model at `model.language_model`; the
 * checkpoints store `language_model.model.…`, llm-compressor's ignore list
 * names the stored modules, and a tied Mistral 3 is re-tied in text_config):
 * llm-compressor's own
 * recipe.yaml through the planner, every tensor and the config equal to its
 * data-free checkpoint. Qwen2.5-VL and Qwen2-VL store `model.…` and
 * `visual.…`, InternVL stores the Llava layout's names (tied by default),
 * Qwen3-VL (tied here), Qwen3-VL-MoE (experts written per expert, as
 * llm-compressor linearizes them) and Idefics3 (`model.text_model`) the
 * in-memory names;
 * each with the ignore list of llm-compressor's example for it.
 */
describe('quantc apply matches llm-compressor on gpt-oss, Llama 4 and vision-language models', () => {
  for (const model of ['gpt_oss', 'llama4', 'llava', 'mistral3', 'qwen2_5_vl', 'qwen2_vl', 'qwen3_vl', 'qwen3_vl_moe', 'idefics3', 'internvl']) {
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
