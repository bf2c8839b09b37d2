/**
 * Mixtral checkpoints come in two layouts: the original one transformers 5
 * still writes (`block_sparse_moe.experts.E.w1/w3/w2`) and the fused one it
 * holds in memory (`mlp.experts.gate_up_proj`). Calibrated, GPTQ and SmoothQuant recipes
 * must give the same checkpoint from both, up to the block's name: a
 * statistic or a propagated weight looked up under the wrong name would
 * change the numbers.
 */
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { CALIBRATION } from '../calibrate-refs.js';
import { memoryIo } from '../memory-io.js';
import { DATAFREE, parseSafetensors, serializeSafetensors, unpackModel, type RefTensor } from './fixtures.js';

/** The same model with its experts fused as transformers 5 holds them. */
function fuse(original: ReadonlyMap<string, RefTensor>, layers: number, experts: number): Map<string, RefTensor> {
  const out = new Map<string, RefTensor>();
  for (const [name, t] of original) if (!name.includes('.block_sparse_moe.')) out.set(name, t);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.block_sparse_moe`;
    const get = (e: number, w: string): RefTensor => original.get(`${p}.experts.${e}.${w}.weight`)!;
    const [inter, hidden] = get(0, 'w1').shape as [number, number];
    const stack = (parts: RefTensor[], shape: number[]): RefTensor => ({ dtype: 'BF16', shape, bytes: Buffer.concat(parts.map((x) => x.bytes)) });
    const all = [...Array(experts).keys()];
    out.set(`model.layers.${l}.mlp.experts.gate_up_proj`, stack(all.flatMap((e) => [get(e, 'w1'), get(e, 'w3')]), [experts, 2 * inter, hidden]));
    out.set(`model.layers.${l}.mlp.experts.down_proj`, stack(all.map((e) => get(e, 'w2')), [experts, hidden, inter]));
    out.set(`model.layers.${l}.mlp.gate.weight`, original.get(`${p}.gate.weight`)!);
  }
  return out;
}

async function apply(model: string, recipe: string): Promise<Map<string, RefTensor>> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-mixtral-'));
  await writeFile(join(cwd, 'r.yaml'), recipe);
  const io = memoryIo(cwd);
  const code = await main(['apply', 'r.yaml', '--model', model, '--data', join(CALIBRATION, 'text.txt'), '--samples', '4', '--seq-len', '64', '--out', 'out', '-q'], io);
  expect(io.err.join(''), io.err.join('')).not.toMatch(/error/);
  expect(code).toBe(0);
  return parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
}

const recipe = (modifier: string, scheme: string): string =>
  `quant_stage:\n  quant_modifiers:\n${modifier
    .split('+')
    .map((m) => (m === 'SmoothQuantModifier' ? `    ${m}:\n      smoothing_strength: 0.8\n` : `    ${m}:\n      targets: [Linear]\n      scheme: ${scheme}\n      ignore: [lm_head]\n`))
    .join('')}`;

describe('mixtral in its original layout', () => {
  test.each([
    ['QuantizationModifier', 'FP8'],
    ['GPTQModifier', 'W4A16'],
    ['SmoothQuantModifier+GPTQModifier', 'W8A8'],
  ])('%s %s gives the fused layout\'s checkpoint under block_sparse_moe', async (modifier, scheme) => {
    const original = await unpackModel(join(DATAFREE, 'mixtral', 'base'));
    await copyFile(join(CALIBRATION, 'tokenizer.json'), join(original, 'tokenizer.json'));
    const fused = await unpackModel(join(DATAFREE, 'mixtral', 'base'));
    await copyFile(join(CALIBRATION, 'tokenizer.json'), join(fused, 'tokenizer.json'));
    await writeFile(join(fused, 'model.safetensors'), serializeSafetensors(fuse(parseSafetensors(new Uint8Array(await readFile(join(original, 'model.safetensors')))), 2, 4)));

    const fromOriginal = await apply(original, recipe(modifier, scheme));
    const fromFused = await apply(fused, recipe(modifier, scheme));
    expect([...fromOriginal.keys()].filter((k) => k.includes('.mlp.'))).toEqual([]);
    expect(fromOriginal.has('model.layers.1.block_sparse_moe.experts.3.up_proj.weight_scale')).toBe(true);
    const renamed = new Map([...fromOriginal].map(([k, v]) => [k.replace('.block_sparse_moe.', '.mlp.'), v]));
    expect([...renamed.keys()].sort()).toEqual([...fromFused.keys()].sort());
    for (const [name, t] of fromFused) expect(Buffer.compare(Buffer.from(renamed.get(name)!.bytes), Buffer.from(t.bytes)), name).toBe(0);
  });
});
