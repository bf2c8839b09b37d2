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

/** Root of the served-model fixtures of `model`. */
function root(model: string): string {
  return join(CALIBRATION, '..', 'simulate', model);
}

/** The variants under test/fixtures/simulate/llama. */
export const VARIANTS = ['W8A8', 'FP8_DYNAMIC', 'MXFP4', 'MXFP8', 'FP8', 'INT8_STATIC', 'INT8_STATIC_ASYM', 'NVFP4', 'FP8_DYNAMIC_KV', 'FP8_DYNAMIC_HEAD'] as const;

/** A variant's reference perplexities: with activation fake quantization and (llama) without, weights only. */
export interface SimulateRefs {
  readonly perplexity: { readonly activations: Record<string, number>; readonly weights?: Record<string, number> };
}

/** The qwen3_moe variants: its W4A16 checkpoint with input activations added (experts included). */
export const MOE_VARIANTS = ['FP8_TOKEN', 'NVFP4_INPUTS'] as const;

/** A temporary model folder with the variant's checkpoint and the calibration tokenizer. */
export async function simulateModel(variant: string, model = 'llama'): Promise<string> {
  const dir = join(root(model), variant);
  const [base, ...removed] = (await readFile(join(dir, 'base.txt'), 'utf8')).trim().split('\n');
  const out = await modelWithTokenizer(model, base);
  if (existsSync(join(dir, 'config.json'))) await copyFile(join(dir, 'config.json'), join(out, 'config.json'));
  if (!existsSync(join(dir, 'overlay.safetensors.gz'))) return out;
  const tensors = parseSafetensors(new Uint8Array(await readFile(join(out, 'model.safetensors'))));
  for (const r of removed) tensors.delete(r.slice(1));
  for (const [name, t] of parseSafetensors(gunzipSync(await readFile(join(dir, 'overlay.safetensors.gz'))))) tensors.set(name, t);
  await writeFile(join(out, 'model.safetensors'), serializeSafetensors(new Map([...tensors].sort(([a], [b]) => (a < b ? -1 : 1)))));
  return out;
}

/** A variant's refs.json. */
export async function simulateRefs(variant: string, model = 'llama'): Promise<SimulateRefs> {
  return JSON.parse(await readFile(join(root(model), variant, 'refs.json'), 'utf8')) as SimulateRefs;
}

/** A variant's refs.safetensors: per-layer outputs and logits for the calibration input ids, float32. */
export async function simulateTensors(variant: string, model = 'llama'): Promise<{ layers: Float32Array[]; logits: Float32Array }> {
  const t = parseSafetensors(new Uint8Array(await readFile(join(root(model), variant, 'refs.safetensors'))));
  const f32 = (n: string): Float32Array => new Float32Array(t.get(n)!.bytes.slice().buffer);
  const layers: Float32Array[] = [];
  for (let i = 0; t.has(`layer.${i}`); i++) layers.push(f32(`layer.${i}`));
  return { layers, logits: f32('logits') };
}
