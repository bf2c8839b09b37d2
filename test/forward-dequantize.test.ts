import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import type { CliIo } from '../src/cli/io.js';
import { readLinear } from '../src/execute/forward/dequantize.js';
import { openCheckpoint } from '../src/execute/safetensors-reader.js';
import { CALIBRATION } from './calibrate-refs.js';
import { DATAFREE, unpackModel } from './execute/fixtures.js';

const MODULES = ['model.layers.0.self_attn.q_proj', 'model.layers.1.mlp.down_proj'];

/** Largest |dequantized − original| relative to the original's largest magnitude in the same row. */
async function worstRowError(scheme: string): Promise<number> {
  const base = await openCheckpoint(await unpackModel(join(DATAFREE, 'llama', 'base')));
  const quant = await openCheckpoint(await unpackModel(join(DATAFREE, 'llama', scheme)));
  let worst = 0;
  for (const m of MODULES) {
    const w = await readLinear(base, m);
    const q = await readLinear(quant, m);
    expect([q.rows, q.cols]).toEqual([w.rows, w.cols]);
    for (let r = 0; r < w.rows; r++) {
      let amax = 0;
      let diff = 0;
      for (let c = 0; c < w.cols; c++) {
        amax = Math.max(amax, Math.abs(w.data[r * w.cols + c]!));
        diff = Math.max(diff, Math.abs(w.data[r * w.cols + c]! - q.data[r * w.cols + c]!));
      }
      if (amax > 0) worst = Math.max(worst, diff / amax);
    }
  }
  return worst;
}

describe('dequantization of formats transformers cannot load', () => {
  // FP8 E4M3 keeps 3 mantissa bits (≤ 1/16 relative rounding); block scales are shared by 128×128
  // blocks, so a row's error is bounded by its block's max, up to the 100× outlier row of the fixture.
  test.each([
    ['FP8_BLOCK', 0.07],
    ['MXFP8', 0.07],
    ['MXFP4', 0.25],
  ])('%s weights stay within the format rounding of the original', async (scheme, bound) => {
    const worst = await worstRowError(scheme);
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThan(bound);
  });
});

describe('quantc eval on an unreadable weight', () => {
  test('forward-weight-unreadable names the tensor', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'W4A16'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(CALIBRATION, f), join(dir, f));
    // Rename one tensor in the safetensors header (same length, so offsets stay valid).
    const path = join(dir, 'model.safetensors');
    const bytes = Buffer.from(await readFile(path));
    const at = bytes.indexOf('model.layers.0.self_attn.q_proj.weight_scale');
    bytes.write('model.layers.0.self_attn.q_proj.weight_scalX', at);
    await writeFile(path, bytes);
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { cwd: dir, isTty: false, stdout: (t) => void out.push(t), stderr: (t) => void err.push(t) };
    expect(await main(['eval', '--model', dir, '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '16'], io)).toBe(1);
    expect(err.join('')).toContain('error forward-weight-unreadable: model.layers.0.self_attn.q_proj: no plain weight and no weight_scale');
    await rm(dir, { recursive: true });
  });
});
