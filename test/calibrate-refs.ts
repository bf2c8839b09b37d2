/**
 * Reference data of test/fixtures/calibration (made by
 * make_calibration_refs.py with transformers 5.17): per-layer outputs and
 * logits for fixed token ids, tokenized text and perplexities.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import type { TokenBatch } from '../src/execute/forward/executor.js';
import { DATAFREE, parseSafetensors, unpackModel } from './execute/fixtures.js';

/** Root of the calibration fixtures. */
export const CALIBRATION = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'calibration');

/** Reference tensors of one model, as float32 (ids as numbers). */
export interface ForwardRefs {
  readonly inputIds: number[][];
  readonly layers: Float32Array[];
  readonly logits: Float32Array;
}

/** The JSON side of a model's references. */
export interface TextRefs {
  readonly text_ids: number[];
  readonly input_ids_routed: Record<string, number[]>;
  /** Router bias the reference set on every MoE layer (glm4_moe_lite_grouped), or null. */
  readonly e_score_correction_bias?: number[] | null;
  readonly perplexity: Record<string, Record<string, number>>;
}

/** Loads `<model>.safetensors`. */
export async function forwardRefs(model: string): Promise<ForwardRefs> {
  const t = parseSafetensors(new Uint8Array(await readFile(join(CALIBRATION, `${model}.safetensors`))));
  const f32 = (name: string): Float32Array => {
    const b = t.get(name)!.bytes;
    return new Float32Array(b.slice().buffer);
  };
  const ids = t.get('input_ids')!;
  const flat = Array.from(new BigInt64Array(ids.bytes.slice().buffer), Number);
  const [b, s] = ids.shape as [number, number];
  const inputIds = Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
  const layers: Float32Array[] = [];
  for (let i = 0; t.has(`layer.${i}`); i++) layers.push(f32(`layer.${i}`));
  return { inputIds, layers, logits: f32('logits') };
}

/** Loads `<model>.json`. */
export async function textRefs(model: string): Promise<TextRefs> {
  return JSON.parse(await readFile(join(CALIBRATION, `${model}.json`), 'utf8')) as TextRefs;
}

/** A temporary model folder: a data-free fixture checkpoint (or a calibration one under models/) plus the calibration tokenizer. */
export async function modelWithTokenizer(model: string, variant = 'base'): Promise<string> {
  const own = join(CALIBRATION, 'models', model);
  const dir = await unpackModel(existsSync(own) ? own : join(DATAFREE, model, variant));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(CALIBRATION, f), join(dir, f));
  return dir;
}

export { relativeError } from './bench/relative-error.js';


/** The reference text's tokens (llama tokenizer) as batches of one 32-token window each, as the AWQ and SmoothQuant references were made. */
export function llamaWindows(): TokenBatch[] {
  const ids = (JSON.parse(readFileSync(join(CALIBRATION, 'llama.json'), 'utf8')) as { text_ids: number[] }).text_ids;
  const out: TokenBatch[] = [];
  for (let i = 0; i + 32 <= ids.length; i += 32) out.push([ids.slice(i, i + 32)]);
  return out;
}
