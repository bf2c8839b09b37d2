/**
 * AWQ against llm-compressor's own (test/fixtures/awq, made by
 * make_awq_refs.py on tiny checkpoints widened to float32 — dense, MoE
 * blocks of every router family, MLA attention — the same 32-token windows): the resolved mappings and parents exactly; per
 * mapping the activation means, the grid losses, the kept grid point and
 * its scales; the written checkpoint's smoothed norms, scales, zero points
 * and integer codes. Tolerances come from the measured noise (see the
 * fixture's `noise`): two llm-compressor runs that differ in thread count
 * agree bit for bit; llm-compressor against itself with its activation
 * sums moved by one unit in the last place (`ulp`, the float32 rounding
 * that separates onnxruntime's sums from PyTorch's) sets the tolerances.
 * That noise is tiny with an asymmetric scheme, and large with a symmetric
 * one: there the absmax element of every group lands on ±7.5, a rounding tie
 * the last bit of `W·s` decides, so a few percent of a grid loss, some grid
 * choices and about 1% of the codes move with it. Both stay far below what
 * a bf16 forward changes or what plain RTN gives.
 */
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { cwdSourceHost } from '../../../src/cli/cwd-host.js';
import { awqJob } from '../../../src/execute/awq/awq-job.js';
import { ForwardModel } from '../../../src/execute/forward/executor.js';
import { jobFromPlan } from '../../../src/execute/from-plan.js';
import { planRecipe } from '../../../src/plan/plan-recipe.js';
import { CALIBRATION, llamaWindows, modelWithTokenizer } from '../../calibrate-refs.js';
import { parseSafetensors, serializeSafetensors, type RefTensor } from '../fixtures.js';
import { memoryIo } from '../../memory-io.js';

interface AwqRef {
  readonly recipe: readonly { modifier: string; kwargs: Record<string, unknown> }[];
  readonly quantization_config: Record<string, unknown>;
  readonly mappings: readonly { smooth: string; balance: string[]; parent: string; tokens: number; x_mean: number[]; losses: number[]; best: number; scales: number[] }[];
  readonly noise: Record<'ulp' | 'bf16' | 'threads2', NoiseRun> & { readonly rtn: { readonly codes_differ: number } };
}

/** llm-compressor against itself (see make_awq_refs.py). */
interface NoiseRun {
  readonly mappings: readonly { smooth: string; best_differs: boolean; scales_worst: number; losses_worst: number }[];
  readonly codes_differ: number;
}

const REFS = join(CALIBRATION, '..', 'awq');
const cases = (suffix: string): (readonly [string, string])[] =>
  existsSync(REFS) ? readdirSync(REFS).flatMap((model) => readdirSync(join(REFS, model)).filter((f) => f.endsWith(suffix) && !f.slice(0, -suffix.length).includes('.')).map((f) => [model, f.slice(0, -suffix.length)] as const)) : [];
const CASES = cases('.json.gz');
/** llm-compressor's runs on the checkpoints as stored, in bf16 (make_awq_refs.py --bf16). */
const BF16_CASES = cases('.bf16.json.gz');

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
  // A multimodal config (Llama 4's) carries the text model's dtype in its text_config too.
  const text = config.text_config as Record<string, unknown> | undefined;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, dtype: 'float32', ...(text ? { text_config: { ...text, dtype: 'float32' } } : {}) }, null, 2));
  return dir;
}

/** The reference's recipe written into a fresh folder and planned against `modelDir`: the folder and the job. */
async function refJob(ref: AwqRef, modelDir: string): Promise<{ cwd: string; job: ReturnType<typeof jobFromPlan> }> {
  const cwd = await mkdtemp(join(tmpdir(), 'quantc-awq-'));
  const modifiers = Object.fromEntries(ref.recipe.map((m) => [m.modifier, m.kwargs]));
  await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify({ default_stage: { default_modifiers: modifiers } }, null, 1)}\n`);
  const planned = await planRecipe(join(cwd, 'recipe.yaml'), modelDir, { source: cwdSourceHost('/') }, 'test');
  return { cwd, job: jobFromPlan(planned.build!, { modelDir, outDir: join(cwd, 'unused'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers }) };
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
      const { cwd, job } = await refJob(ref, modelDir);
      expect(job.awq!.mappings.map((m) => [m.smooth, m.balance, m.parent])).toEqual(ref.mappings.map((m) => [m.smooth, m.balance, m.parent]));

      // Relative loss noise: three times llm-compressor's own under ulp noise, at least 1e-3 (one boundary flip at the extreme ratio).
      const lossTolerance = Math.max(3 * Math.max(...ref.noise.ulp.mappings.map((m) => m.losses_worst)), 1e-3);
      const codeTolerance = Math.max(2 * ref.noise.ulp.codes_differ, 1e-3);
      const run = await awqJob(job, await ForwardModel.open(modelDir), llamaWindows());
      expect(run.reports.length).toBe(ref.mappings.length);
      for (const [i, r] of ref.mappings.entries()) {
        const got = run.reports[i]!;
        if (process.env.QUANTC_AWQ_DEBUG) console.log(r.smooth, relWorst(got.xMean, r.x_mean).toExponential(1), got.best, r.best, got.losses.map((l, j) => (l / r.losses[j]! - 1).toExponential(1)).join(' '));
        expect(got.tokens, r.smooth).toBe(r.tokens);
        expect(relWorst(got.xMean, r.x_mean), r.smooth).toBeLessThan(1e-5);
        // Every loss within the noise, but for at most one grid point off the kept one: a single code flipped at a
        // rounding boundary by a few-ulp difference of x_mean (measured 2.6e-3 on one of olmoe's experts at the extreme
        // ratio, where x_mean differs by 5e-7) moves one point's loss by more than the noise spread over all points.
        const off = got.losses.map((l, j) => Math.abs(l - r.losses[j]!) / Math.abs(r.losses[j]!)).flatMap((e, j) => (e < lossTolerance ? [] : [[j, e] as const]));
        expect(off.length, `${r.smooth}: ${JSON.stringify(off)}`).toBeLessThanOrEqual(1);
        for (const [j, e] of off) expect(j !== r.best && j !== got.best && e < 1e-2, `${r.smooth}: grid point ${j} off by ${e}`).toBe(true);
        // The same grid point, unless llm-compressor's own two candidates are closer than the loss noise.
        if (got.best !== r.best) expect(Math.abs(r.losses[got.best]! / r.losses[r.best]! - 1), r.smooth).toBeLessThan(lossTolerance);
        else expect(relWorst(got.scales, r.scales), r.smooth).toBeLessThan(1e-5);
        if (got.best !== r.best) break;
      }

      const io = memoryIo(cwd);
      const code = await main(['apply', 'recipe.yaml', '--model', modelDir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'], io);
      expect(io.err.join(''), io.err.join('')).not.toMatch(/ error [a-z-]+:|warning apply-|warning awq-(?!mapping-skipped|mapping-unmatched|balance-unquantized|default-mappings|scale-floor)/);
      expect(code).toBe(0);
      const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      expect((JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: unknown }).quantization_config).toEqual(ref.quantization_config);
      let differ = 0;
      let total = 0;
      let scales = 0;
      const offsetNorms = new Set(job.offsetNorms ?? []);
      for (const [name, r] of refTensors) {
        const t = got.get(name)!;
        expect({ name, dtype: t.dtype, shape: t.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
        if (name.endsWith('weight_packed')) {
          const a = codes(t);
          const b = codes(r);
          for (let i = 0; i < b.length; i++) differ += a[i] === b[i] ? 0 : 1;
          total += b.length;
        } else if (name.endsWith('weight_zero_point')) {
          const a = codes(t);
          const b = codes(r);
          for (let i = 0; i < b.length; i++) differ += a[i] === b[i] ? 0 : 1;
          total += b.length;
        } else if (offsetNorms.has(name)) {
          // An offset norm scales by 1 + weight: its smoothed weights near zero are compared as that scale.
          const one = (x: Float32Array): Float32Array => x.map((v) => 1 + v);
          scales = Math.max(scales, relWorst(one(f32(t)), one(f32(r))));
        } else scales = Math.max(scales, relWorst(f32(t), f32(r)));
      }
      if (process.env.QUANTC_AWQ_DEBUG) console.log(variant, 'codes differ', differ / total, 'scales worst', scales);
      expect(differ / total).toBeLessThan(codeTolerance);
      expect(ref.noise.rtn.codes_differ).toBeGreaterThan(4 * codeTolerance);
      expect(scales).toBeLessThan(Math.max(...ref.noise.ulp.mappings.map((m) => m.scales_worst), 1e-5) * 3);

      // Perplexity of both checkpoints (llm-compressor's: quantc's layout with its tensors swapped in) next to the unquantized model's.
      const lcDir = join(cwd, 'lc');
      await mkdir(lcDir);
      for (const f of await readdir(join(cwd, 'out'))) if (f !== 'model.safetensors') await copyFile(join(cwd, 'out', f), join(lcDir, f));
      await writeFile(join(lcDir, 'model.safetensors'), serializeSafetensors(new Map([...got].map(([name, t]) => [name, refTensors.get(name) ?? t]))));
      const ppl = async (dir: string): Promise<number> => {
        const e = memoryIo(cwd);
        expect(await main(['eval', '--model', dir, '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32', '--format', 'json', '-q'], e)).toBe(0);
        return (JSON.parse(e.out.join('')) as { perplexity: number }).perplexity;
      };
      const [base, ours, theirs] = [await ppl(modelDir), await ppl(join(cwd, 'out')), await ppl(lcDir)];
      if (process.env.QUANTC_AWQ_DEBUG) console.log(variant, 'perplexity base', base, 'quantc', ours, 'llm-compressor', theirs);
      // Asymmetric: equal codes, equal perplexity. Symmetric: the 1% of codes the ±7.5 ties flip (as they flip between
      // llm-compressor runs under ulp noise) move it by a fraction of what quantization itself costs (measured 17%).
      expect(Math.abs(ours - theirs)).toBeLessThan(ref.noise.ulp.codes_differ > 0 ? 0.25 * Math.abs(theirs - base) : 1e-6 * theirs);
    });
  }
});

/**
 * How far a family's bf16 search may sit from llm-compressor's, as a multiple of the base bounds below:
 * 1 where every parent searches in bf16 on a forward that gives transformers' bf16 values (and Llama 4, whose
 * MoE parents search in float32 yet stay within these bounds on its reference); 3 where a parent
 * still searches in float32 (sigmoid-routed, GraniteMoE, PhiMoE, gpt-oss and Llama 4 blocks, MLA attention)
 * or the bf16 forward is not bit for bit (Qwen3-Next's delta rule); 8 for DeepSeek-V3, whose MLA parents in
 * float32 move its second layer's inputs most (llm-compressor's own best and the point chosen 7.8% apart).
 */
const BF16_SLACK: Readonly<Record<string, number>> = { granitemoe: 3, phimoe: 3, gpt_oss: 3, qwen3_next: 3, glm4_moe: 3, glm4_moe_lite: 3, deepseek_v3: 8 };

describe("AWQ with --precision bf16 reproduces llm-compressor's on the bf16 model (32-token windows, batch size 1)", () => {
  test('has reference cases', () => expect(BF16_CASES.length).toBeGreaterThan(0));
  const totals = { mappings: 0, same: 0, sameAsFloat32: 0 };
  for (const [model, variant] of BF16_CASES) {
    test(`${model} ${variant}`, async () => {
      const ref = JSON.parse(gunzipSync(await readFile(join(REFS, model, `${variant}.bf16.json.gz`))).toString('utf8')) as AwqRef;
      const modelDir = await modelWithTokenizer(model);
      const { job } = await refJob(ref, modelDir);
      const forward = await ForwardModel.open(modelDir);
      forward.usePrecision('bf16');
      const run = await awqJob(job, forward, llamaWindows());
      expect(run.reports.length).toBe(ref.mappings.length);
      // The float32 model's choices, as llm-compressor makes them (the previous describe's references).
      const f32 = JSON.parse(gunzipSync(await readFile(join(REFS, model, `${variant}.json.gz`))).toString('utf8')) as AwqRef;
      const slack = BF16_SLACK[model] ?? 1;
      for (const [i, r] of ref.mappings.entries()) {
        const got = run.reports[i]!;
        const apart = Math.abs(r.losses[got.best]! / r.losses[r.best]! - 1);
        if (process.env.QUANTC_AWQ_DEBUG) console.log('BF16', model, variant, r.smooth, got.best, r.best, f32.mappings[i]!.best, relWorst(got.losses, r.losses).toExponential(1), apart);
        expect(got.tokens, r.smooth).toBe(r.tokens);
        totals.mappings++;
        totals.sameAsFloat32 += f32.mappings[i]!.best === r.best ? 1 : 0;
        // Each batch's loss is a bf16 value (2⁻⁸ apart near 1): on the first layer the losses agree to a few of those
        // steps; from the second layer on the parent's inputs differ from llm-compressor's by bf16 steps in some
        // elements (x_mean by up to 2e-3), which moves the losses by up to 5%.
        expect(relWorst(got.losses, r.losses), r.smooth).toBeLessThan(slack * (r.smooth.includes('.layers.0.') ? 1e-2 : 5e-2));
        if (got.best === r.best) {
          totals.same++;
          expect(relWorst(got.scales, r.scales), r.smooth).toBeLessThan(slack * 5e-3);
        } else expect(apart, `${r.smooth}: grid point ${got.best} for ${r.best}`).toBeLessThan(slack * 1e-2);
      }
    });
  }
  // Measured: 145 of 184 choices llm-compressor's own bf16 ones, against 94 of llm-compressor's float32 runs.
  test("three in four grid choices are llm-compressor's, far more than its own float32 runs make", () => {
    expect(totals.mappings).toBeGreaterThan(150);
    expect(totals.same).toBeGreaterThan(0.75 * totals.mappings);
    expect(totals.same).toBeGreaterThan(totals.sameAsFloat32 + 0.2 * totals.mappings);
  });
});
