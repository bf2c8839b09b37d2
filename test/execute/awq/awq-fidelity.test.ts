/**
 * AWQ against llm-compressor's own (test/fixtures/awq, made by
 * make_awq_refs.py on the tiny llama checkpoint widened to float32, the
 * same 32-token windows): the resolved mappings and parents exactly; per
 * mapping the activation means, the grid losses, the kept grid point and
 * its scales; the written checkpoint's smoothed norms, scales, zero points
 * and integer codes. Tolerances come from the measured noise (see the
 * fixture's `noise`): two llm-compressor runs that differ in thread count
 * agree bit for bit, so quantc is held to float32 rounding (onnxruntime's
 * float32 kernels sum in another order than PyTorch's), far below what a
 * bf16 forward changes (several grid choices, 6% of the codes) or what
 * plain RTN gives (a third of the codes of the balanced layers).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { cwdSourceHost } from '../../../src/cli/cwd-host.js';
import { awqJob } from '../../../src/execute/awq/awq-job.js';
import { ForwardModel, type TokenBatch } from '../../../src/execute/forward/executor.js';
import { jobFromPlan } from '../../../src/execute/from-plan.js';
import { planRecipe } from '../../../src/plan/plan-recipe.js';
import { CALIBRATION, modelWithTokenizer } from '../../calibrate-refs.js';
import { parseSafetensors, serializeSafetensors, type RefTensor } from '../fixtures.js';
import { memoryIo } from '../../memory-io.js';

interface AwqRef {
  readonly recipe: readonly { modifier: string; kwargs: Record<string, unknown> }[];
  readonly quantization_config: Record<string, unknown>;
  readonly mappings: readonly { smooth: string; balance: string[]; parent: string; tokens: number; x_mean: number[]; losses: number[]; best: number; scales: number[] }[];
  readonly noise: { readonly rtn: { readonly codes_differ: number }; readonly bf16: { readonly codes_differ: number } };
}

const REFS = join(CALIBRATION, '..', 'awq');
const CASES = existsSync(REFS) ? readdirSync(REFS).flatMap((model) => readdirSync(join(REFS, model)).filter((f) => f.endsWith('.json.gz')).map((f) => [model, f.replace('.json.gz', '')] as const)) : [];

/**
 * Relative loss noise. Activation means agree to 1e-6 (float32 sums in
 * another order); the scales follow, so `W·s` may differ in its last bit,
 * and with a symmetric scheme the absmax element of a group quantizes to
 * exactly ±7.5, a rounding tie its last bit decides: each such flip moves a
 * grid loss by ~1e-3 relative.
 */
const LOSS_TOLERANCE = 2e-2;

function windows(): TokenBatch[] {
  const ids = (JSON.parse(readFileSync(join(CALIBRATION, 'llama.json'), 'utf8')) as { text_ids: number[] }).text_ids;
  const out: TokenBatch[] = [];
  for (let i = 0; i + 32 <= ids.length; i += 32) out.push([ids.slice(i, i + 32)]);
  return out;
}

/** The fixture checkpoint with its bf16 tensors widened to float32 (exactly), as llm-compressor loaded it. */
async function float32Model(model: string): Promise<string> {
  const dir = await modelWithTokenizer(model);
  const tensors = parseSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))));
  const wide = new Map<string, RefTensor>();
  for (const [name, t] of tensors) {
    if (t.dtype !== 'BF16') {
      wide.set(name, t);
      continue;
    }
    const bits = new Uint16Array(t.bytes.slice().buffer);
    const out = new Uint32Array(bits.length);
    for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
    wide.set(name, { dtype: 'F32', shape: t.shape, bytes: new Uint8Array(out.buffer) });
  }
  await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(wide));
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, dtype: 'float32' }, null, 2));
  return dir;
}

function relWorst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1e-30));
  return worst;
}

function f32(t: RefTensor): Float32Array {
  return new Float32Array(t.bytes.slice().buffer);
}

/** 4-bit codes of an int32-packed weight (8 per word, low bits first). */
function codes(t: RefTensor): Uint8Array {
  const words = new Int32Array(t.bytes.slice().buffer);
  const out = new Uint8Array(words.length * 8);
  for (let i = 0; i < words.length; i++) for (let k = 0; k < 8; k++) out[i * 8 + k] = (words[i]! >>> (4 * k)) & 0xf;
  return out;
}

describe("AWQ reproduces llm-compressor's (float32 model, 32-token windows, batch size 1)", () => {
  test('has reference cases', () => expect(CASES.length).toBeGreaterThan(0));
  for (const [model, variant] of CASES) {
    test(`${model} ${variant}`, async () => {
      const ref = JSON.parse(gunzipSync(await readFile(join(REFS, model, `${variant}.json.gz`))).toString('utf8')) as AwqRef;
      const refTensors = parseSafetensors(gunzipSync(await readFile(join(REFS, model, `${variant}.safetensors.gz`))));
      const modelDir = await float32Model(model);
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-awq-'));
      const modifiers = Object.fromEntries(ref.recipe.map((m) => [m.modifier, m.kwargs]));
      await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify({ default_stage: { default_modifiers: modifiers } }, null, 1)}\n`);

      const planned = await planRecipe(join(cwd, 'recipe.yaml'), modelDir, { source: cwdSourceHost('/') }, 'test');
      const job = jobFromPlan(planned.build!, { modelDir, outDir: join(cwd, 'unused'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers });
      expect(job.awq!.mappings.map((m) => [m.smooth, m.balance, m.parent])).toEqual(ref.mappings.map((m) => [m.smooth, m.balance, m.parent]));

      const run = await awqJob(job, await ForwardModel.open(modelDir), windows());
      expect(run.reports.length).toBe(ref.mappings.length);
      for (const [i, r] of ref.mappings.entries()) {
        const got = run.reports[i]!;
        if (process.env.QUANTC_AWQ_DEBUG) console.log(r.smooth, got.best, r.best, got.losses.map((l, j) => (l / r.losses[j]! - 1).toExponential(1)).join(' '));
        expect(got.tokens, r.smooth).toBe(r.tokens);
        expect(relWorst(got.xMean, r.x_mean), r.smooth).toBeLessThan(1e-5);
        expect(relWorst(got.losses, r.losses), r.smooth).toBeLessThan(LOSS_TOLERANCE);
        // The same grid point, unless llm-compressor's own two candidates are closer than the loss noise.
        if (got.best !== r.best) expect(Math.abs(r.losses[got.best]! / r.losses[r.best]! - 1), r.smooth).toBeLessThan(LOSS_TOLERANCE);
        else expect(relWorst(got.scales, r.scales), r.smooth).toBeLessThan(1e-5);
      }

      const io = memoryIo(cwd);
      const code = await main(['apply', 'recipe.yaml', '--model', modelDir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'], io);
      expect(io.err.join(''), io.err.join('')).not.toMatch(/ error [a-z-]+:|warning (awq|apply)-/);
      expect(code).toBe(0);
      const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      expect((JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: unknown }).quantization_config).toEqual(ref.quantization_config);
      let differ = 0;
      let total = 0;
      for (const [name, r] of refTensors) {
        const t = got.get(name)!;
        expect({ name, dtype: t.dtype, shape: t.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
        if (name.endsWith('weight_packed')) {
          const a = codes(t);
          const b = codes(r);
          for (let i = 0; i < b.length; i++) differ += a[i] === b[i] ? 0 : 1;
          total += b.length;
        } else if (name.endsWith('weight_zero_point')) expect(Buffer.from(t.bytes).equals(Buffer.from(r.bytes)), name).toBe(true);
        else expect(relWorst(f32(t), f32(r)), name).toBeLessThan(1e-5);
      }
      // A code flips only where float32 rounding puts a value on the other side of a rounding boundary.
      expect(differ / total).toBeLessThan(1e-3);
      expect(ref.noise.rtn.codes_differ).toBeGreaterThan(100 * Math.max(differ / total, 1e-3));
    });
  }
});
