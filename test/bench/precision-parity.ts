/**
 * `--precision bf16` on a device against transformers' bf16 forward (the
 * references of `test/fixtures/scripts/make_precision_refs.py`, made on the
 * CPU with the default sdpa attention), per tiny model: the largest relative
 * error of a layer output and of the logits, and the share of values equal
 * to the reference, with the attention fused (onnxruntime's
 * GroupQueryAttention, the default on CUDA) and as MatMul/Softmax ops; the
 * float32 graphs' errors beside them for scale. What `test/forward-precision.test.ts`
 * checks with vitest, for a machine that has the built code and no vitest
 * (the GPU machine).
 *
 *   node dist/test/bench/precision-parity.js [--device cuda] [--json FILE] [MODEL…]
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ForwardModel } from '../../src/execute/forward/executor.js';
import type { Device } from '../../src/execute/runtime.js';
import { parseSafetensors, unpackModel, type RefTensor } from '../execute/fixtures.js';
import { relativeError } from './relative-error.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
const CALIBRATION = join(FIXTURES, 'calibration');
const MODELS = ['llama', 'qwen3_moe', 'qwen2', 'qwen3', 'mistral', 'qwen2_moe', 'mixtral', 'olmoe', 'deepseek_v3', 'glm4_moe', 'glm4_moe_lite'];

/** A temporary folder holding the model's checkpoint (unpacked) and the calibration tokenizer. */
async function modelDir(model: string): Promise<string> {
  const own = join(CALIBRATION, 'models', model);
  const dir = await unpackModel(existsSync(own) ? own : join(FIXTURES, 'datafree', model, 'base'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(CALIBRATION, f), join(dir, f));
  return dir;
}

/** A reference tensor's float32 values. */
function floats(t: RefTensor): Float32Array {
  return new Float32Array(t.bytes.slice().buffer);
}

function sameShare(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let same = 0;
  for (let i = 0; i < b.length; i++) if (a[i] === b[i]) same++;
  return same / b.length;
}

/** One variant's errors: worst layer, logits, and the smallest share of identical values. */
interface Errors {
  readonly layer: number;
  readonly logits: number;
  readonly same: number;
}

async function errors(dir: string, device: Device, precision: 'fp32' | 'bf16', fused: boolean, ids: number[][], refLayers: Float32Array[], refLogits: Float32Array): Promise<Errors> {
  const model = await ForwardModel.open(dir, device);
  model.layerOutputs = true;
  const ran = model.usePrecision(precision);
  if (ran.low) model.precision = { ...ran, low: { ...ran.low, fusedAttention: fused && ran.low.native } };
  const layers: Float32Array[] = [];
  const hidden = await model.layers(await model.embed([ids]), { onLayer: (layer, _b, h) => (layers[layer] = Float32Array.from(h.data)) });
  const [logits] = await model.head(hidden, 'logits');
  return {
    layer: Math.max(...layers.map((l, i) => relativeError(l, refLayers[i]!))),
    logits: relativeError(logits!, refLogits),
    same: Math.min(...layers.map((l, i) => sameShare(l, refLayers[i]!)), sameShare(logits!, refLogits)),
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const device = (at('--device') ?? 'cuda') as Device;
  const json = at('--json');
  const named = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
  const rows: unknown[] = [];
  for (const model of named.length ? named : MODELS) {
    const refs = parseSafetensors(await readFile(join(CALIBRATION, 'precision', `${model}.safetensors`)));
    const input = parseSafetensors(await readFile(join(CALIBRATION, `${model}.safetensors`))).get('input_ids')!;
    const [b, s] = input.shape as [number, number];
    const flat = Array.from(new BigInt64Array(input.bytes.slice().buffer), Number);
    const ids = Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
    const refLayers: Float32Array[] = [];
    for (let i = 0; refs.has(`layer.${i}`); i++) refLayers.push(floats(refs.get(`layer.${i}`)!));
    const refLogits = floats(refs.get('logits')!);
    const dir = await modelDir(model);
    const fp32 = await errors(dir, 'cpu', 'fp32', false, ids, refLayers, refLogits);
    const fused = await errors(dir, device, 'bf16', true, ids, refLayers, refLogits);
    const ops = await errors(dir, device, 'bf16', false, ids, refLayers, refLogits);
    rows.push({ model, device, fp32, fused, ops });
    const f = (e: Errors): string => `layers ${e.layer.toExponential(1)} logits ${e.logits.toExponential(1)} same ${(100 * e.same).toFixed(1)}%`;
    console.log(`${model.padEnd(14)} bf16 fused: ${f(fused)} | bf16 ops: ${f(ops)} | fp32 (cpu): ${f(fp32)}`);
  }
  if (json) await writeFile(json, `${JSON.stringify(rows, null, 2)}\n`);
}

await main();
