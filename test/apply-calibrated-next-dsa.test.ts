import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { CALIBRATION, modelWithTokenizer } from './calibrate-refs.js';
import { parseSafetensors, serializeSafetensors, type RefTensor } from './execute/fixtures.js';
import { memoryIo } from './memory-io.js';

/** llm-compressor's oneshot output for one recipe (made by make_long_sequence_refs.py, as make_calibrated_refs.py makes its own). */
interface CalibratedRef {
  readonly quantization_config: Record<string, unknown>;
  readonly moe_calibrate_all_experts: boolean;
  readonly recipe: Record<string, unknown>;
  readonly tensors: Record<string, { dtype: string; shape: number[]; sha256: string; values?: number[] }>;
}

const REFS = join(CALIBRATION, '..', 'calibrated');
const DTYPES: Record<string, string> = { BF16: 'bfloat16', F32: 'float32', I8: 'int8', F8_E4M3: 'float8_e4m3fn', U8: 'uint8', I32: 'int32', F16: 'float16' };

function firstValue(t: RefTensor): number {
  const b = t.bytes.slice().buffer;
  if (t.dtype === 'F32') return new Float32Array(b)[0]!;
  return new Float32Array(Uint32Array.of(new Uint16Array(b)[0]! << 16).buffer)[0]!;
}

/** The model folder with every bf16 tensor widened to float32 (as llm-compressor loads it with dtype=float32). */
async function widened(dir: string): Promise<string> {
  const tensors = parseSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))));
  const out = new Map<string, RefTensor>();
  for (const [name, t] of tensors) {
    if (t.dtype !== 'BF16') {
      out.set(name, t);
      continue;
    }
    const half = new Uint16Array(t.bytes.slice().buffer);
    out.set(name, { dtype: 'F32', shape: t.shape, bytes: new Uint8Array(Uint32Array.from(half, (h) => h << 16).buffer) });
  }
  await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(out));
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, dtype: 'float32' }));
  return dir;
}

/**
 * Runs `apply` with the reference's recipe on the 32-token windows of the
 * calibration text; returns the written tensors, config and report.
 */
async function applyLike(ref: CalibratedRef, modelDir: string): Promise<{ got: Map<string, RefTensor>; config: { quantization_config: unknown }; out: string }> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-cal-'));
  const modifier = { ...ref.recipe, ignore: ['lm_head', 're:.*mlp.gate$'] };
  const recipe = { quantc: { moe: { calibrate_all_experts: ref.moe_calibrate_all_experts } }, default_stage: { default_modifiers: { QuantizationModifier: modifier } } };
  await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify(recipe, null, 1)}\n`);
  const io = memoryIo(cwd);
  const code = await main(['apply', 'recipe.yaml', '--model', modelDir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'], io);
  expect(code, io.err.join('')).toBe(0);
  return {
    got: parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors')))),
    config: JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: unknown },
    out: io.out.join(''),
  };
}

/**
 * Calibrated apply on qwen3_next (DeltaNet and gated attention observed, the
 * MoE with its shared expert calibrated through the expert rewrite) and
 * glm_moe_dsa (the DSA indexer's Linears observed). Against llm-compressor
 * run on the float32 model, every scale agrees to float32 rounding; against
 * its usual bf16 run, within a few bf16 steps: llm-compressor observes a
 * bf16 forward pass, and these layers amplify its rounding (a key the
 * indexer keeps or drops, a token routed to another expert).
 */
describe("calibrated apply on qwen3_next and glm_moe_dsa against llm-compressor's oneshot", () => {
  for (const model of ['qwen3_next', 'glm_moe_dsa']) {
    for (const variant of ['FP8', 'NVFP4_ROUTED']) {
      test(`${model} ${variant}, float32 model: every tensor, every scale`, async () => {
        const ref = JSON.parse(gunzipSync(await readFile(join(REFS, model, `${variant}_F32.json.gz`))).toString('utf8')) as CalibratedRef;
        const { got, config, out } = await applyLike(ref, await widened(await modelWithTokenizer(model)));
        expect(out).toMatch(/ {2}coverage {5}\d+ experts in \d+ MoE layers/);
        expect([...got.keys()].sort()).toEqual(Object.keys(ref.tensors).sort());
        let worst = 0;
        for (const [name, r] of Object.entries(ref.tensors)) {
          const g = got.get(name)!;
          expect({ name, dtype: DTYPES[g.dtype], shape: g.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
          if (!r.values) {
            expect(createHash('sha256').update(g.bytes).digest('hex'), `${name} bytes differ`).toBe(r.sha256);
            continue;
          }
          worst = Math.max(worst, Math.abs(firstValue(g) - r.values[0]!) / Math.abs(r.values[0]!));
        }
        expect(worst).toBeLessThan(1e-5);
        expect(config.quantization_config).toEqual(ref.quantization_config);
      });

      test(`${model} ${variant}, bf16 model: weights exact, scales within bf16 forward rounding`, async () => {
        const ref = JSON.parse(gunzipSync(await readFile(join(REFS, model, `${variant}.json.gz`))).toString('utf8')) as CalibratedRef;
        const { got, config } = await applyLike(ref, await modelWithTokenizer(model));
        expect([...got.keys()].sort()).toEqual(Object.keys(ref.tensors).sort());
        for (const [name, r] of Object.entries(ref.tensors)) {
          const g = got.get(name)!;
          expect({ name, dtype: DTYPES[g.dtype], shape: g.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
          if (!r.values) expect(createHash('sha256').update(g.bytes).digest('hex'), `${name} bytes differ`).toBe(r.sha256);
          else expect(Math.abs(firstValue(g) - r.values[0]!) / Math.abs(r.values[0]!), name).toBeLessThan(2 ** -4);
        }
        expect(config.quantization_config).toEqual(ref.quantization_config);
      });
    }
  }

  test('qwen3_next SmoothQuant then W8A8, float32 model: offset norms smoothed as 1 + weight and written back as scale - 1', async () => {
    const ref = JSON.parse(gunzipSync(await readFile(join(REFS, 'qwen3_next', 'SQ_W8A8_F32.json.gz'))).toString('utf8')) as CalibratedRef & {
      recipe: { smoothing_strength: number; mappings: unknown; scheme: string; ignore: string[] };
    };
    const cwd = await mkdtemp(join(tmpdir(), 'quantc-sq-'));
    const { smoothing_strength, mappings, scheme, ignore } = ref.recipe;
    const recipe = { default_stage: { default_modifiers: { SmoothQuantModifier: { smoothing_strength, mappings }, QuantizationModifier: { targets: ['Linear'], scheme, ignore } } } };
    await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify(recipe, null, 1)}\n`);
    const io = memoryIo(cwd);
    const modelDir = await widened(await modelWithTokenizer('qwen3_next'));
    expect(await main(['apply', 'recipe.yaml', '--model', modelDir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'], io), io.err.join('')).toBe(0);
    const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
    const base = parseSafetensors(new Uint8Array(await readFile(join(modelDir, 'model.safetensors'))));
    expect([...got.keys()].sort()).toEqual(Object.keys(ref.tensors).sort());
    const f32 = (t: RefTensor): Float32Array => new Float32Array(t.bytes.slice().buffer);
    let smoothed = 0;
    let sameWeights = 0;
    let weights = 0;
    for (const [name, r] of Object.entries(ref.tensors)) {
      const g = got.get(name)!;
      if (r.values) {
        // Norms: the scale each applies (1 + w for the zero-centred ones) within float32 rounding of the statistics.
        const offset = !name.includes('linear_attn');
        const scale = (v: number): number => (offset ? 1 + v : v);
        const values = f32(g);
        values.forEach((v, i) => expect(Math.abs(scale(v) - scale(r.values![i]!)), `${name}[${i}]`).toBeLessThan(1e-5 * Math.abs(scale(r.values![i]!))));
        if (Buffer.compare(Buffer.from(g.bytes), Buffer.from(base.get(name)!.bytes)) !== 0) smoothed++;
      } else if (name.endsWith('.weight') && g.dtype === 'I8') {
        weights++;
        if (createHash('sha256').update(g.bytes).digest('hex') === r.sha256) sameWeights++;
      }
    }
    // Layers 1 and 3's input norms and every post-attention norm are smoothed (and every offset norm round-tripped).
    expect(smoothed).toBeGreaterThanOrEqual(6);
    // Int8 weights: those no smoothing touched are identical; smoothed ones may move a code where the scales differ in the last bits.
    expect(sameWeights / weights).toBeGreaterThan(0.5);
  });
});

