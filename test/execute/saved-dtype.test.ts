/**
 * Untouched tensors are written in the dtype llm-compressor's transformers
 * load gives them (test/fixtures/scripts/make_dtype_refs.py): cast to the
 * checkpoint's dtype, or kept in float32 where the model class keeps them.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { roundBf16InPlace } from '../../src/execute/dtypes.js';
import { readVector } from '../../src/execute/forward/dequantize.js';
import { WeightReader } from '../../src/execute/forward/weights.js';
import { NO_CHANGES, OverlayWeights } from '../../src/execute/pipeline/overlay-weights.js';
import { openCheckpoint } from '../../src/execute/safetensors-reader.js';
import { castBytes, keptInFloat32, loadDtype, savedDtype } from '../../src/execute/saved-dtype.js';
import { CALIBRATION } from '../calibrate-refs.js';
import { expectCheckpoint, loadRef, type CheckpointRef } from './checkpoint-refs.js';
import { DATAFREE, unpackModel } from './fixtures.js';
import { memoryIo } from '../memory-io.js';

interface DtypeRef extends CheckpointRef {
  readonly source: string;
  readonly recipe: { targets: string; scheme: string; ignore: string[] };
  /** Calibrated on the 32-token windows of the calibration text. */
  readonly calibrated: boolean;
}

const FIXTURES = join(DATAFREE, '..');

describe('the dtype of untouched tensors', () => {
  test('cast to the load dtype, float32 where a model class keeps it, as stored where nothing says', () => {
    expect(savedDtype('model.norm.weight', 'F32', 'mistral', 'BF16')).toBe('BF16');
    expect(savedDtype('model.embed_tokens.weight', 'F16', 'llama', 'BF16')).toBe('BF16');
    expect(savedDtype('model.layers.1.mlp.gate.e_score_correction_bias', 'BF16', 'deepseek_v3', 'BF16')).toBe('F32');
    expect(savedDtype('model.layers.1.mlp.gate.e_score_correction_bias', 'BF16', 'deepseek_v3', 'F32')).toBe('F32');
    expect(savedDtype('model.layers.1.mlp.gate.e_score_correction_bias', 'BF16', 'qwen3_moe', 'BF16')).toBe('BF16');
    expect(savedDtype('model.norm.weight', 'F32', 'mistral', null)).toBe('F32');
    expect(savedDtype('model.layers.0.mlp.experts.ids', 'I64', 'mistral', 'BF16')).toBe('I64');
    expect(keptInFloat32('model.layers.1.mlp.gate.e_score_correction_bias')).toBe(true);
    expect(keptInFloat32('model.layers.1.mlp.gate.weight')).toBe(false);
    expect(loadDtype({ dtype: 'bfloat16' })).toBe('BF16');
    expect(loadDtype({ torch_dtype: 'float16' })).toBe('F16');
    expect(loadDtype({ text_config: { dtype: 'float32' } })).toBe('F32');
    expect(loadDtype({})).toBeNull();
  });

  test('casts round to nearest even, as torch does', () => {
    const f32 = (xs: number[]): Uint8Array => new Uint8Array(Float32Array.from(xs).buffer);
    const u16 = (b: Uint8Array): number[] => [...new Uint16Array(b.slice().buffer)];
    // 1 + 2^-8 is a tie between 1 and 1 + 2^-7 in bf16: even is 1; 1 + 3·2^-8 rounds up to 1 + 2^-6.
    expect(u16(castBytes(f32([1 + 2 ** -8, 1 + 3 * 2 ** -8, -2, 1e-40]), 'F32', 'BF16'))).toEqual([0x3f80, 0x3f82, 0xc000, 0x0001]);
    expect(u16(castBytes(f32([1 + 2 ** -11, 65520, 2 ** -24]), 'F32', 'F16'))).toEqual([0x3c00, 0x7c00, 0x0001]);
    expect([...new Float32Array(castBytes(new Uint8Array(Uint16Array.of(0x3f82, 0xc000).buffer), 'BF16', 'F32').slice().buffer)]).toEqual([1 + 2 ** -6, -2]);
  });

  test('the calibration forward reads float32 vectors of a model loaded in bf16 as transformers loads them, and as stored in float32 runs', async () => {
    const mixed = await openCheckpoint(await unpackModel(join(DATAFREE, 'dtypes', 'mixed')));
    const stored = await readVector(mixed, 'model.norm.weight');
    const bf16 = new WeightReader(mixed, 'bfloat16');
    // Loaded in float32 (--precision fp32), as stored.
    expect(await bf16.vector('model.norm.weight')).toEqual(stored);
    bf16.loadedAs = 'bfloat16';
    const loaded = await bf16.vector('model.norm.weight');
    expect(loaded).toEqual(roundBf16InPlace(stored.slice()));
    expect(loaded).not.toEqual(stored);
    // A modifier's overlay reads the checkpoint's vectors through its base, which takes the load dtype.
    const overlay = new OverlayWeights(new WeightReader(mixed, 'bfloat16'), NO_CHANGES, []);
    overlay.loadedAs = 'bfloat16';
    expect(await overlay.vector('model.norm.weight')).toEqual(loaded);
    const deepseek = await openCheckpoint(await unpackModel(join(CALIBRATION, 'models', 'deepseek_v3')));
    const bias = 'model.layers.1.mlp.gate.e_score_correction_bias';
    const reader = new WeightReader(deepseek, 'bfloat16');
    reader.loadedAs = 'bfloat16';
    expect(await reader.vector(bias)).toEqual(await readVector(deepseek, bias));
  });

  for (const model of ['mixed', 'deepseek_v3', 'mixed_calibrated']) {
    test(`${model}: every tensor as llm-compressor wrote it`, async () => {
      const ref = await loadRef<DtypeRef>(join(DATAFREE, 'dtypes', `${model}.json.gz`));
      const dir = await unpackModel(join(FIXTURES, ref.source));
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-dtype-'));
      await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify({ default_stage: { default_modifiers: { QuantizationModifier: { ...ref.recipe, targets: [ref.recipe.targets] } } } }, null, 1)}\n`);
      const io = memoryIo(cwd);
      if (ref.calibrated) for (const f of ['tokenizer.json', 'tokenizer_config.json']) await writeFile(join(dir, f), await readFile(join(CALIBRATION, f)));
      const data = ref.calibrated ? ['--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'] : [];
      const code = await main(['apply', 'recipe.yaml', '--model', dir, '--out', 'out', ...data], io);
      expect(code, io.err.join('')).toBe(0);
      await expectCheckpoint(ref, join(cwd, 'out'));
    });
  }
});
