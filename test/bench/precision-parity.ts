/**
 * `--precision bf16` on a device against transformers' bf16 forward (the
 * references of `test/fixtures/scripts/make_precision_refs.py`, made on the
 * CPU with the default sdpa attention), per tiny model: the largest relative
 * error of a layer output and of the logits, and the share of values equal
 * to the reference, with the attention fused (onnxruntime's
 * GroupQueryAttention, the default on CUDA) and as MatMul/Softmax ops; the
 * float32 graphs' errors beside them for scale; and how many values the
 * narrowed graphs (narrow.ts, the default) change against the same graphs
 * computing between roundings in float32 (none, where the provider's
 * low-dtype kernels round as float32 arithmetic then a rounding does; each
 * narrowed operator is also checked alone on random values). What
 * `test/forward-precision.test.ts` checks with vitest, for a machine that has
 * the built code and no vitest (the GPU machine).
 *
 *   node dist/test/bench/precision-parity.js [--device cuda] [--refs DIR] [--json FILE] [MODEL…]
 *
 * `--refs DIR` reads the references from DIR instead: the same forward made
 * by transformers on the card (`make_precision_refs.py --device cuda --out
 * DIR`), torch's CUDA kernels rather than its CPU ones.
 */
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ForwardModel } from '../../src/execute/forward/executor.js';
import { resolvePrecision } from '../../src/execute/forward/precision.js';
import { GraphRuntime, type Device } from '../../src/execute/runtime.js';
import { GraphBuilder, OnnxType } from '../../src/execute/onnx/graph-builder.js';
import { parseSafetensors, unpackModel, type RefTensor } from '../execute/fixtures.js';
import { relativeError } from './relative-error.js';
import { xorshift32 } from './xorshift.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
const CALIBRATION = join(FIXTURES, 'calibration');
const MODELS = [
  ...['llama', 'qwen3_moe', 'qwen2', 'qwen3', 'mistral', 'qwen2_moe', 'mixtral', 'olmoe', 'deepseek_v3', 'glm4_moe', 'glm4_moe_lite'],
  ...['granitemoe', 'phimoe', 'qwen3_next', 'glm_moe_dsa', 'gpt_oss', 'llama4_text'],
];

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

/** The layer outputs and logits of one variant: fused attention or not, narrowed or not (where the precision is native). */
async function forward(dir: string, device: Device, precision: 'fp32' | 'bf16', fused: boolean, narrowed: boolean, ids: number[][]): Promise<Float32Array[]> {
  const model = await ForwardModel.open(dir, device);
  model.layerOutputs = true;
  const ran = model.usePrecision(precision);
  if (ran.low) {
    const { narrow, ...low } = ran.low;
    model.precision = { ...ran, low: { ...low, fusedAttention: fused && ran.low.native, ...(narrowed && narrow ? { narrow } : {}) } };
  }
  const layers: Float32Array[] = [];
  const hidden = await model.layers(await model.embed([ids]), { onLayer: (layer, _b, h) => (layers[layer] = Float32Array.from(h.data)) });
  const [logits] = await model.head(hidden, 'logits');
  return [...layers, logits!];
}

function errors(outputs: Float32Array[], refLayers: Float32Array[], refLogits: Float32Array): Errors {
  const layers = outputs.slice(0, -1);
  const logits = outputs.at(-1)!;
  return {
    layer: Math.max(...layers.map((l, i) => relativeError(l, refLayers[i]!))),
    logits: relativeError(logits, refLogits),
    same: Math.min(...layers.map((l, i) => sameShare(l, refLayers[i]!)), sameShare(logits, refLogits)),
  };
}

/** Values of `a` not bit-equal to `b`'s, over all outputs. */
function differing(a: Float32Array[], b: Float32Array[]): number {
  let n = 0;
  a.forEach((x, k) => {
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], b[k]![i])) n++;
  });
  return n;
}

/** Random bf16 values (as float32) of magnitude up to 2^±8, some zeros and negatives. */
function randomBf16(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  const random = xorshift32(seed);
  for (let i = 0; i < n; i++) {
    const x = random();
    const e = 127 - 8 + ((x >>> 8) % 17);
    bits[i] = i % 97 === 0 ? 0 : (((x >>> 31) << 31) | (e << 23) | (((x >>> 1) & 0x7f) << 16)) >>> 0;
  }
  return out;
}

/**
 * Each operator narrow.ts runs in bf16, alone: its bf16 kernel against float32
 * arithmetic then a rounding, on random bf16 values (same shapes and a
 * broadcast row); the count of results that differ.
 */
async function kernelCheck(device: Device): Promise<Record<string, number>> {
  const n = 1 << 16;
  const result: Record<string, number> = {};
  for (const op of ['Add', 'Sub', 'Mul']) {
    for (const shapeB of [[n], [1]]) {
      const g = new GraphBuilder();
      const a = g.input('a', OnnxType.float, [n]);
      const b = g.input('b', OnnxType.float, shapeB);
      const low = (x: string): string => g.op('Cast', [x], { to: OnnxType.bfloat16 });
      const up = (x: string): string => g.op('Cast', [x], { to: OnnxType.float });
      g.output(up(g.op(op, [low(a), low(b)])), 'low', OnnxType.float, [n]);
      g.output(up(low(g.op(op, [a, b]))), 'emulated', OnnxType.float, [n]);
      const runtime = new GraphRuntime(device);
      try {
        const r = await runtime.run(`check_${op}`, () => g.build(op), {
          a: { type: 'float32', data: randomBf16(n, 7), dims: [n] },
          b: { type: 'float32', data: randomBf16(shapeB[0]!, 11), dims: shapeB },
        });
        result[`${op}${shapeB[0] === 1 ? ' (broadcast)' : ''}`] = differing([r.low!.data as Float32Array], [r.emulated!.data as Float32Array]);
      } finally {
        await runtime.dispose();
      }
    }
  }
  return result;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const device = (at('--device') ?? 'cuda') as Device;
  const json = at('--json');
  const refsDir = at('--refs') ?? join(CALIBRATION, 'precision');
  const named = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
  const rows: unknown[] = [];
  // The CPU provider has no bf16 arithmetic kernels (and its graphs are not narrowed).
  if (device === 'cuda') {
    const kernels = await kernelCheck(device);
    console.log(`bf16 kernels against float32 then a rounding, differing results of ${1 << 16}: ${JSON.stringify(kernels)}`);
    // The fused kernels that may round differently from transformers, as this run resolved them (precision.ts: defaults and environment).
    const low = resolvePrecision('bf16', 'llama', 'bfloat16', device).low;
    rows.push({ device, kernels, fusedRotary: low?.fusedRotary === true, fusedNorms: low?.fusedNorms === true });
  }
  for (const model of named.length ? named : MODELS) {
    const refs = parseSafetensors(await readFile(join(refsDir, `${model}.safetensors`)));
    const input = parseSafetensors(await readFile(join(CALIBRATION, `${model}.safetensors`))).get('input_ids')!;
    const [b, s] = input.shape as [number, number];
    const flat = Array.from(new BigInt64Array(input.bytes.slice().buffer), Number);
    const ids = Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
    const refLayers: Float32Array[] = [];
    for (let i = 0; refs.has(`layer.${i}`); i++) refLayers.push(floats(refs.get(`layer.${i}`)!));
    const refLogits = floats(refs.get('logits')!);
    const dir = await modelDir(model);
    const fp32 = errors(await forward(dir, 'cpu', 'fp32', false, false, ids), refLayers, refLogits);
    const narrowed = await forward(dir, device, 'bf16', true, true, ids);
    const wide = await forward(dir, device, 'bf16', true, false, ids);
    const fused = errors(narrowed, refLayers, refLogits);
    const ops = errors(await forward(dir, device, 'bf16', false, true, ids), refLayers, refLogits);
    const narrowing = { differing: differing(narrowed, wide), of: narrowed.reduce((n, x) => n + x.length, 0) };
    rows.push({ model, device, refs: refsDir === join(CALIBRATION, 'precision') ? 'cpu' : refsDir, fp32, fused, ops, narrowing });
    const f = (e: Errors): string => `layers ${e.layer.toExponential(1)} logits ${e.logits.toExponential(1)} same ${(100 * e.same).toFixed(1)}%`;
    console.log(`${model.padEnd(14)} bf16 fused: ${f(fused)} | bf16 ops: ${f(ops)} | fp32 (cpu): ${f(fp32)} | narrowed vs not: ${narrowing.differing} of ${narrowing.of} differ`);
  }
  if (json) await writeFile(json, `${JSON.stringify(rows, null, 2)}\n`);
}

await main();
