import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { CALIBRATION } from './calibrate-refs.js';
import { DATAFREE, parseSafetensors, unpackModel } from './execute/fixtures.js';
import { memoryIo } from './memory-io.js';

/** llm-compressor's oneshot output for one recipe (see make_calibrated_refs.py). */
interface CalibratedRef {
  readonly quantization_config: Record<string, unknown>;
  readonly moe_calibrate_all_experts: boolean;
  readonly recipe: Record<string, unknown>;
  readonly tensors: Record<string, { dtype: string; shape: number[]; sha256: string; values?: number[] }>;
}

const REFS = join(CALIBRATION, '..', 'calibrated');
const DTYPES: Record<string, string> = { BF16: 'bfloat16', F32: 'float32', U8: 'uint8', I32: 'int32', F8_E4M3: 'float8_e4m3fn' };
/** The ignore lists make_calibrated_refs.py gives these models (llama4: llm-compressor's Llama 4 example). */
const IGNORE: Record<string, string[]> = {
  gpt_oss: ['lm_head'],
  llama4: ['re:.*lm_head', 're:.*self_attn', 're:.*router', 're:.*vision_model.*', 're:.*multi_modal_projector.*', 'Llama4TextAttention'],
};

/** Experts the routed-only calibration data never reaches (0 tokens). */
const UNCOVERED: Record<string, { label: string; module: string }> = {
  'gpt_oss NVFP4_ROUTED': { label: 'layer 1 expert 3', module: 'model.layers.1.mlp.experts.3.' },
};

function firstValue(dtype: string, bytes: Uint8Array): number {
  const b = bytes.slice().buffer;
  if (dtype === 'F32') return new Float32Array(b)[0]!;
  return new Float32Array(Uint32Array.of(new Uint16Array(b)[0]! << 16).buffer)[0]!;
}

/**
 * NVFP4 (static input global scales) on gpt-oss and Llama4ForConditionalGeneration,
 * calibrated text-only through the language model with every expert (or only
 * routed tokens) observed, against llm-compressor's oneshot: weights
 * byte for byte, input scales within the bf16-forward tolerance of
 * execute-calibrated.test.ts, the expert coverage report printed.
 */
describe("calibrated apply on gpt-oss and Llama 4 reproduces llm-compressor's oneshot", () => {
  for (const model of ['gpt_oss', 'llama4']) {
    for (const variant of ['NVFP4', 'NVFP4_ROUTED']) {
      test(`${model} ${variant}`, async () => {
        const ref = JSON.parse(gunzipSync(await readFile(join(REFS, model, `${variant}.json.gz`))).toString('utf8')) as CalibratedRef;
        const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
        const cwd = await mkdtemp(join(tmpdir(), 'quantc-cal-'));
        const modifier = { ...ref.recipe, ignore: IGNORE[model] };
        const uncovered = UNCOVERED[`${model} ${variant}`];
        const write = async (moe: Record<string, unknown>): Promise<void> => {
          const recipe = { quantc: { moe: { calibrate_all_experts: ref.moe_calibrate_all_experts, ...moe } }, default_stage: { default_modifiers: { QuantizationModifier: modifier } } };
          await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify(recipe, null, 1)}\n`);
        };
        for (const f of ['tokenizer.json', 'tokenizer_config.json']) await writeFile(join(modelDir, f), await readFile(join(CALIBRATION, f)));
        const args = ['apply', 'recipe.yaml', '--model', modelDir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'];
        if (uncovered) {
          // An expert no calibration token reaches: stopped by default, naming it.
          await write({});
          const refused = memoryIo(cwd);
          expect(await main(args, refused)).not.toBe(0);
          expect(refused.err.join('')).toContain(`error apply-expert-coverage: 1 expert saw fewer than min_expert_tokens = 1 calibration tokens: ${uncovered.label} (0 tokens)`);
          await write({ on_low_coverage: 'fallback' });
        } else await write({});
        const io = memoryIo(cwd);
        const code = await main(args, io);
        const err = io.err.join('');
        expect(err, err).not.toMatch(/ error [a-z-]+:/);
        expect(code, err).toBe(0);
        expect(err).toMatch(/experts/);
        const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
        const kept = Object.keys(ref.tensors).filter((n) => !(uncovered && n.startsWith(uncovered.module) && n.endsWith('.input_global_scale')));
        expect([...got.keys()].sort()).toEqual(kept.sort());
        const calibrated = Object.keys(ref.tensors).filter((n) => ref.tensors[n]!.values);
        expect(calibrated.length).toBeGreaterThan(0);
        let exact = 0;
        for (const [name, r] of Object.entries(ref.tensors)) {
          // llm-compressor writes the never-initialized input scale of an expert that saw no token; quantc's fallback leaves its activations unquantized.
          if (uncovered && name.startsWith(uncovered.module) && name.endsWith('.input_global_scale')) {
            expect(got.has(name), name).toBe(false);
            continue;
          }
          const g = got.get(name)!;
          expect({ name, dtype: DTYPES[g.dtype] ?? g.dtype, shape: g.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
          const same = createHash('sha256').update(g.bytes).digest('hex') === r.sha256;
          if (!r.values) {
            expect(same, `${name} bytes differ`).toBe(true);
            continue;
          }
          if (same) exact++;
          const v = firstValue(g.dtype, g.bytes);
          const want = r.values[0]!;
          expect(Math.abs(v - want) / Math.abs(want), `${name}: ${v} vs ${want}`).toBeLessThanOrEqual(2 ** -6);
        }
        // Llama 4 ignores attention, so fewer scales sit right after the embedding (exact there).
        expect(exact / calibrated.length).toBeGreaterThanOrEqual(0.5);
        const config = JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: unknown };
        if (!uncovered) expect(config.quantization_config).toEqual(ref.quantization_config);
      });
    }
  }
});
