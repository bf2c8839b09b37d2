/**
 * Qwen3-VL-MoE checkpoints come in two layouts: the published one stores the
 * fused experts transposed (`gate_up_proj [E, H, 2I]`, `down_proj [E, I, H]`)
 * and transformers transposes a tensor whose shape differs from the
 * parameter's on load (`Transpose(1, 2, check_dims=True)`); `save_pretrained`
 * of a model built in memory keeps `[E, 2I, H]`. Both load to the same model,
 * so the data-free checkpoint, the text-only perplexity and GPTQ and AWQ runs must
 * not depend on the layout. The fixture has `H = I`, where `down_proj` looks
 * the same either way (transformers then reads it as stored), so only
 * `gate_up_proj` is transposed here.
 */
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { perplexity } from '../../src/execute/calibrate/perplexity.js';
import { ForwardModel } from '../../src/execute/forward/executor.js';
import { storedTransposition } from '../../src/execute/weight-source.js';
import { CALIBRATION } from '../calibrate-refs.js';
import { memoryIo } from '../memory-io.js';
import { DATAFREE, parseSafetensors, readRefTensors, serializeSafetensors, unpackModel, type RefTensor } from './fixtures.js';

/** `[E, R, C]` → `[E, C, R]` of 2-byte elements. */
function swapLastTwo(t: RefTensor): RefTensor {
  const [e, r, c] = t.shape as [number, number, number];
  const out = new Uint8Array(t.bytes.length);
  for (let x = 0; x < e; x++) {
    for (let i = 0; i < r; i++) {
      for (let j = 0; j < c; j++) {
        const from = ((x * r + i) * c + j) * 2;
        const to = ((x * c + j) * r + i) * 2;
        out[to] = t.bytes[from]!;
        out[to + 1] = t.bytes[from + 1]!;
      }
    }
  }
  return { dtype: t.dtype, shape: [e, c, r], bytes: out };
}

/** The base fixture with its fused gate_up_proj stored as published. */
async function publishedLayout(): Promise<string> {
  const dir = await unpackModel(join(DATAFREE, 'qwen3_vl_moe', 'base'));
  const tensors = parseSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))));
  const out = new Map<string, RefTensor>();
  for (const [name, t] of tensors) out.set(name, name.endsWith('.mlp.experts.gate_up_proj') ? swapLastTwo(t) : t);
  expect(out.get('model.language_model.layers.0.mlp.experts.gate_up_proj')!.shape).toEqual([3, 128, 256]);
  await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(out));
  await copyFile(join(CALIBRATION, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  return dir;
}

async function apply(model: string, recipe: string, data: boolean): Promise<{ cwd: string; err: string }> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-qwen3-vl-moe-'));
  await writeFile(join(cwd, 'r.yaml'), recipe);
  const io = memoryIo(cwd);
  const args = data ? ['--data', join(CALIBRATION, 'text.txt'), '--samples', '4', '--seq-len', '32'] : [];
  const code = await main(['apply', 'r.yaml', '--model', model, '--out', 'out', ...args], io);
  expect(code, io.err.join('')).toBe(0);
  return { cwd, err: io.err.join('') };
}

describe('Qwen3-VL-MoE with its experts stored as published', () => {
  test('data-free W4A16 writes llm-compressor\'s checkpoint, with no cross-check complaint', async () => {
    const ref = join(DATAFREE, 'qwen3_vl_moe', 'W4A16');
    const { cwd, err } = await apply(await publishedLayout(), await readFile(join(ref, 'recipe.yaml'), 'utf8'), false);
    expect(err).not.toMatch(/checkpoint-/);
    const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    const want = await readRefTensors(ref);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [name, r] of want) expect(Buffer.compare(Buffer.from(got.get(name)!.bytes), Buffer.from(r.bytes)), name).toBe(0);
  });

  test('text-only perplexity is transformers\'', async () => {
    const refs = JSON.parse(await readFile(join(CALIBRATION, 'multimodal.json'), 'utf8')) as { text_ids: number[]; perplexity: Record<string, Record<string, Record<string, number>>> };
    const forward = await ForwardModel.open(await publishedLayout());
    for (const [seq, expected] of Object.entries(refs.perplexity['qwen3_vl_moe']!['base']!)) {
      const r = await perplexity(forward, refs.text_ids, Number(seq), 8);
      expect(Math.abs(r.perplexity - expected) / expected, `perplexity at ${seq}`).toBeLessThan(1e-5);
    }
  });

  test.each([
    ['GPTQ', 'quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: ["re:.*lm_head", "re:.*visual.*"]\n'],
    // The MoE block is AWQ's parent for post_attention_layernorm → the experts' gate/up_proj (renormalized softmax top-k).
    ['AWQ', 'quant_stage:\n  quant_modifiers:\n    AWQModifier: {}\n    QuantizationModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: ["re:.*lm_head", "re:.*visual.*"]\n'],
  ])('%s through the language model gives the same checkpoint from either layout', async (_, recipe) => {
    const memory = await unpackModel(join(DATAFREE, 'qwen3_vl_moe', 'base'));
    await copyFile(join(CALIBRATION, 'tokenizer.json'), join(memory, 'tokenizer.json'));
    const a = await apply(memory, recipe, true);
    const b = await apply(await publishedLayout(), recipe, true);
    const ta = parseSafetensors(new Uint8Array(await readFile(join(a.cwd, 'out', 'model.safetensors'))));
    const tb = parseSafetensors(new Uint8Array(await readFile(join(b.cwd, 'out', 'model.safetensors'))));
    expect(ta.has('model.language_model.layers.0.mlp.experts.2.down_proj.weight_packed')).toBe(true);
    expect([...tb.keys()].sort()).toEqual([...ta.keys()].sort());
    for (const [name, t] of ta) expect(Buffer.compare(Buffer.from(tb.get(name)!.bytes), Buffer.from(t.bytes)), name).toBe(0);
  });

  test('a fused tensor is read transposed exactly when its shape is the parameter\'s with the last two dimensions swapped', () => {
    const down = { tensor: 'x.experts.down_proj', expertsModule: 'x.experts', transposed: false, projections: ['down_proj'], shape: [4, 64, 32] };
    expect(storedTransposition(down, [4, 64, 32]).transposed).toBe(false);
    expect(storedTransposition(down, [4, 32, 64]).transposed).toBe(true);
    expect(storedTransposition(down, [4, 16, 128]).transposed).toBe(false);
    expect(storedTransposition({ ...down, shape: undefined }, [4, 32, 64]).transposed).toBe(false);
  });
});
