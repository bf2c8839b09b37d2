/**
 * The served-model fixtures of test/fixtures/simulate (made by
 * make_simulate_refs.py): quantized llama checkpoints stored as a data-free
 * base plus an overlay of the tensors that differ, and compressed-tensors'
 * fake-quantized forward outputs and perplexities.
 */
import { existsSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { CALIBRATION, modelWithTokenizer } from './calibrate-refs.js';
import { parseSafetensors, serializeSafetensors } from './execute/fixtures.js';

/** Root of the served-model fixtures. */
export const SIMULATE = join(CALIBRATION, '..', 'simulate', 'llama');

/** The variants under test/fixtures/simulate/llama. */
export const VARIANTS = ['W8A8', 'FP8_DYNAMIC', 'MXFP4', 'MXFP8', 'FP8', 'INT8_STATIC', 'INT8_STATIC_ASYM', 'NVFP4', 'FP8_DYNAMIC_KV'] as const;

/** A variant's reference perplexities: with activation fake quantization and without (weights only). */
export interface SimulateRefs {
  readonly perplexity: Record<'activations' | 'weights', Record<string, number>>;
}

/** A temporary model folder with the variant's checkpoint and the calibration tokenizer. */
export async function simulateModel(variant: string): Promise<string> {
  const dir = join(SIMULATE, variant);
  const [base, ...removed] = (await readFile(join(dir, 'base.txt'), 'utf8')).trim().split('\n');
  const out = await modelWithTokenizer('llama', base);
  if (!existsSync(join(dir, 'overlay.safetensors.gz'))) return out;
  const tensors = parseSafetensors(new Uint8Array(await readFile(join(out, 'model.safetensors'))));
  for (const r of removed) tensors.delete(r.slice(1));
  for (const [name, t] of parseSafetensors(gunzipSync(await readFile(join(dir, 'overlay.safetensors.gz'))))) tensors.set(name, t);
  await writeFile(join(out, 'model.safetensors'), serializeSafetensors(new Map([...tensors].sort(([a], [b]) => (a < b ? -1 : 1)))));
  await copyFile(join(dir, 'config.json'), join(out, 'config.json'));
  return out;
}

/** A variant's refs.json. */
export async function simulateRefs(variant: string): Promise<SimulateRefs> {
  return JSON.parse(await readFile(join(SIMULATE, variant, 'refs.json'), 'utf8')) as SimulateRefs;
}

/** A variant's refs.safetensors: per-layer outputs and logits for the calibration input ids, float32. */
export async function simulateTensors(variant: string): Promise<{ layers: Float32Array[]; logits: Float32Array }> {
  const t = parseSafetensors(new Uint8Array(await readFile(join(SIMULATE, variant, 'refs.safetensors'))));
  const f32 = (n: string): Float32Array => new Float32Array(t.get(n)!.bytes.slice().buffer);
  const layers: Float32Array[] = [];
  for (let i = 0; t.has(`layer.${i}`); i++) layers.push(f32(`layer.${i}`));
  return { layers, logits: f32('logits') };
}
