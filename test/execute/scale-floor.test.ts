/**
 * A channel that carries nothing (here: two input_layernorm weights of the
 * tiny llama's first layer set to zero) gets the floor as its smoothing
 * scale: SmoothQuant's 1e-5, AWQ's 1e-4 before normalisation. Neither
 * llm-compressor says so; apply warns, naming the mapping and how many of its
 * channels, and counts them in the summary line and in `--format json`.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { CALIBRATION, modelWithTokenizer } from '../calibrate-refs.js';
import { memoryIo } from '../memory-io.js';
import { parseSafetensors, serializeSafetensors } from './fixtures.js';

const DEAD = [3, 7];

/** The tiny llama with channels {@link DEAD} of layer 0's input_layernorm zeroed. */
async function deadChannels(): Promise<string> {
  const dir = await modelWithTokenizer('llama');
  const path = join(dir, 'model.safetensors');
  const tensors = parseSafetensors(new Uint8Array(await readFile(path)));
  const norm = tensors.get('model.layers.0.input_layernorm.weight')!;
  const bytes = Uint8Array.from(norm.bytes);
  for (const c of DEAD) bytes.fill(0, 2 * c, 2 * c + 2); // bf16
  tensors.set('model.layers.0.input_layernorm.weight', { ...norm, bytes });
  await writeFile(path, serializeSafetensors(tensors));
  return dir;
}

interface Mapping {
  readonly smooth: string;
  readonly channels: number;
  readonly flooredChannels: number;
  readonly ratio?: number;
}

async function apply(modifiers: string, args: string[] = []): Promise<{ code: number; out: string; err: string }> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-floor-'));
  await writeFile(join(cwd, 'recipe.yaml'), `quant_stage:\n  quant_modifiers:\n${modifiers}`);
  const io = memoryIo(cwd);
  const code = await main(['apply', 'recipe.yaml', '--model', await deadChannels(), '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32', ...args], io);
  return { code, out: io.out.join(''), err: io.err.join('') };
}

describe('smoothing scales at the floor', () => {
  test('SmoothQuant: the dead channels are floored, named in a warning and counted', async () => {
    const recipe = '    SmoothQuantModifier: {smoothing_strength: 0.8}\n    QuantizationModifier: {targets: [Linear], scheme: W8A8, ignore: [lm_head]}\n';
    const json = await apply(recipe, ['--format', 'json']);
    expect(json.code, json.err).toBe(0);
    const report = JSON.parse(json.out) as { smoothquant: { mappings: Mapping[] }; diagnostics: { code: string; severity: string; message: string }[] };
    const floored = report.smoothquant.mappings.filter((m) => m.flooredChannels > 0);
    expect(floored.map((m) => [m.smooth, m.flooredChannels])).toEqual([['model.layers.0.input_layernorm', DEAD.length]]);
    const d = report.diagnostics.find((x) => x.code === 'smoothquant-scale-floor')!;
    expect(d.severity).toBe('warning');
    expect(d.message).toContain(`on ${DEAD.length} channels of 1 mapping`);
    expect(d.message).toContain(`model.layers.0.input_layernorm (${DEAD.length} of ${floored[0]!.channels} channels)`);
    const text = await apply(recipe);
    expect(text.out).toMatch(/ {2}smoothquant {2}4 smooth layers balanced against 10 Linear layers \(smoothing_strength 0\.8\); 2 channels at the scale floor;/);
  });

  test('AWQ: the dead channels are floored at the chosen grid point, named in a warning and counted', async () => {
    const recipe = '    AWQModifier: {}\n    QuantizationModifier: {targets: [Linear], scheme: W4A16_ASYM, ignore: [lm_head]}\n';
    const json = await apply(recipe, ['--format', 'json']);
    expect(json.code, json.err).toBe(0);
    const report = JSON.parse(json.out) as { awq: { mappings: Mapping[] }; diagnostics: { code: string; message: string }[] };
    const first = report.awq.mappings.find((m) => m.smooth === 'model.layers.0.input_layernorm')!;
    // A zero mean activation floors at every grid point but ratio 0 (x⁰ = 1); the search keeps a positive ratio here.
    expect(first.ratio).toBeGreaterThan(0);
    expect(first.flooredChannels).toBe(DEAD.length);
    expect(report.awq.mappings.filter((m) => m !== first).every((m) => m.flooredChannels === 0)).toBe(true);
    expect(report.diagnostics.find((x) => x.code === 'awq-scale-floor')!.message).toContain(`model.layers.0.input_layernorm (${DEAD.length} of ${first.channels} channels)`);
  });
});
