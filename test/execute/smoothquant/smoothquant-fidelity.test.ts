/**
 * SmoothQuant against llm-compressor's own (test/fixtures/smoothquant, made
 * by make_smoothquant_refs.py on the same tiny checkpoints and token
 * windows): the resolved mappings exactly, the smoothing scales and smoothed
 * norm weights to a bf16 rounding (llm-compressor observes a bf16 forward,
 * quantc a float32 one), and the written checkpoint's layout and config.
 */
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { cwdSourceHost } from '../../../src/cli/cwd-host.js';
import { ForwardModel } from '../../../src/execute/forward/executor.js';
import { jobFromPlan } from '../../../src/execute/from-plan.js';
import { smoothJob } from '../../../src/execute/smoothquant/smoothquant-job.js';
import { readLinear } from '../../../src/execute/forward/dequantize.js';
import { layerObjective } from '../../../src/execute/gptq/objective.js';
import { openCheckpoint } from '../../../src/execute/safetensors-reader.js';
import { planRecipe } from '../../../src/plan/plan-recipe.js';
import { CALIBRATION, llamaWindows } from '../../calibrate-refs.js';
import { DATAFREE, parseSafetensors, unpackModel } from '../fixtures.js';
import { memoryIo } from '../../memory-io.js';

interface SmoothRef {
  readonly recipe: readonly { modifier: string; kwargs: Record<string, unknown> }[];
  readonly quantization_config: Record<string, unknown>;
  readonly mappings: readonly { smooth: string; balance: string[]; scales: number[] }[];
  readonly smoothed: Record<string, { dtype: string; shape: number[]; sha256: string; values?: number[] }>;
  readonly tensors: Record<string, { dtype: string; shape: number[]; sha256: string }>;
  /** Smoothed LayerNorm biases as written (phimoe), by norm module. */
  readonly smoothed_biases?: Record<string, number[]>;
  /** `quantc eval` perplexity of llm-compressor's checkpoint and of its float32 run's (variants that keep their checkpoint). */
  readonly perplexity?: { checkpoint: number; f32_run: number };
  /** GPTQ after SmoothQuant: each module's Hessian key and GPTQ's objective, llm-compressor's and round-to-nearest's. */
  readonly modules?: Record<string, { hessian: string; objective: number; objective_checkpoint: number; objective_rtn: number; shape: [number, number] }>;
}

/**
 * GPTQ after SmoothQuant, checkpoint against checkpoint (both pay W8A8's re-quantization on save, 2% on llm-compressor's
 * side, up to 1.5× on the tiny o_proj): quantc's summed objective over llm-compressor's is 1.109 measured, which
 * round-to-nearest (3.44) must miss by far. Smoothing (α = 0.8) leaves layer 0's q_proj with 80% of the objective and a
 * Hessian GPTQ is sensitive to: solved from the same smoothed weight with a float32 Hessian computed outside quantc
 * (RMSNorm of the embeddings, 0.3% from llm-compressor's bf16 one), it scores 1.137 under llm-compressor's Hessian, as
 * quantc's pipeline does, and 1.000 with llm-compressor's own; every other module's solved weight lands within
 * 0.995–1.032. The bound is that forward precision, not the solve.
 */
const GPTQ_TOLERANCE = 1.2;

const REFS = join(CALIBRATION, '..', 'smoothquant');
const DTYPES: Record<string, string> = { BF16: 'bfloat16', F32: 'float32', I8: 'int8', I32: 'int32', I64: 'int64' };
const CASES = existsSync(REFS) ? readdirSync(REFS).flatMap((model) => readdirSync(join(REFS, model)).filter((f) => f.endsWith('.json.gz')).map((f) => [model, f.replace('.json.gz', '')] as const)) : [];


/** bf16 bytes as float32 values. */
function bf16Values(bytes: Uint8Array): Float32Array {
  return Float32Array.from(new Uint16Array(bytes.slice().buffer), (b) => new Float32Array(Uint32Array.of(b << 16).buffer)[0]!);
}

/** Largest relative difference, and the share of exactly equal values. */
function compare(a: ArrayLike<number>, b: ArrayLike<number>): { worst: number; equal: number } {
  let worst = 0;
  let equal = 0;
  for (let i = 0; i < b.length; i++) {
    if (a[i] === b[i]) equal++;
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1e-30));
  }
  return { worst, equal: equal / b.length };
}

/**
 * PhiMoE: smoothing post_attention_layernorm rescales the router's input
 * while the router keeps its weights (llm-compressor's balance layers are
 * the experts only), and sparsemixer's thresholds then route some tokens
 * differently under llm-compressor's bf16 forward than under quantc's
 * float32 one; from layer 1 on, a channel's range may come from such a
 * token (scales worst 11 %, written norms 13 %; two thirds of the scales
 * still equal). Layer 0 holds to the common bound.
 */
const LATER_LAYERS: Readonly<Record<string, number>> = { phimoe: 0.15 };

/**
 * gpt-oss's second layer reads a bf16 MoE layer (clamped SwiGLU, sinks) in
 * llm-compressor: up to 2.6% there, while both agree to 3e-7 when
 * llm-compressor runs the same checkpoint in float32.
 */
const ALL_LAYERS: Readonly<Record<string, number>> = { gpt_oss: 0.03 };

function bound(model: string, module: string): number {
  const common = ALL_LAYERS[model] ?? 0.02;
  return /\.layers\.0\./.test(module) ? common : (LATER_LAYERS[model] ?? common);
}

/** Models llm-compressor has no SmoothQuant mappings for (it falls back to its defaults). */
const DEFAULT_MAPPINGS: ReadonlySet<string> = new Set(['phimoe', 'gpt_oss']);

describe("SmoothQuant reproduces llm-compressor's (bf16 model, 32-token windows, batch size 1)", () => {
  test('has reference cases', () => expect(CASES.length).toBeGreaterThan(0));
  for (const [model, variant] of CASES) {
    test(`${model} ${variant}`, async () => {
      const ref = JSON.parse(gunzipSync(await readFile(join(REFS, model, `${variant}.json.gz`))).toString('utf8')) as SmoothRef;
      // The data-free base the references were made from (calibration/models may hold another model of that name).
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) await writeFile(join(modelDir, f), await readFile(join(CALIBRATION, f)));
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-sq-'));
      const modifiers = Object.fromEntries(ref.recipe.map((m) => [m.modifier, m.kwargs]));
      await writeFile(join(cwd, 'recipe.yaml'), `${JSON.stringify({ default_stage: { default_modifiers: modifiers } }, null, 1)}\n`);

      // The mappings, exactly; the scales to a bf16 rounding.
      const planned = await planRecipe(join(cwd, 'recipe.yaml'), modelDir, { source: cwdSourceHost('/') }, 'test');
      const job = jobFromPlan(planned.build!, { modelDir, outDir: join(cwd, 'unused'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers });
      expect(job.smoothquant!.mappings.map((m) => [m.smooth, m.balance])).toEqual(ref.mappings.map((m) => [m.smooth, m.balance]));
      const run = await smoothJob(job, await ForwardModel.open(modelDir), llamaWindows());
      for (const [i, r] of ref.mappings.entries()) {
        const { worst, equal } = compare(run.reports[i]!.scales, r.scales);
        if (process.env.QUANTC_SQ_RATIOS) console.log(`${model} ${variant} ${r.smooth}: ${(equal * 100).toFixed(0)}% scales equal, worst ${worst.toExponential(1)}`);
        // A bf16 rounding of the activation range, raised to α, moves a scale by well under 2% (see bound()).
        expect(worst, r.smooth).toBeLessThan(bound(model, r.smooth));
        expect(equal, r.smooth).toBeGreaterThan(0.5);
      }

      const io = memoryIo(cwd);
      const code = await main(['apply', 'recipe.yaml', '--model', modelDir, '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32'], io);
      // PhiMoE and gpt-oss have no registry mappings: smoothquant-default-mappings says what llm-compressor logs (for PhiMoE,
      // that its defaults leave the router, which reads post_attention_layernorm too, unbalanced); no other warning.
      const stderr = io.err.join('');
      if (DEFAULT_MAPPINGS.has(model)) expect(stderr).toMatch(/warning smoothquant-default-mappings:/);
      expect(stderr, stderr).not.toMatch(/ error [a-z-]+:|warning (gptq|apply)-|warning smoothquant-(?!default-mappings)/);
      expect(code).toBe(0);
      const got = parseSafetensors(new Uint8Array(await readFile(join(cwd, 'out', 'model.safetensors'))));
      expect([...got.keys()].sort()).toEqual(Object.keys(ref.tensors).sort());
      for (const [name, r] of Object.entries(ref.tensors)) expect({ name, dtype: DTYPES[got.get(name)!.dtype], shape: got.get(name)!.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
      expect((JSON.parse(await readFile(join(cwd, 'out', 'config.json'), 'utf8')) as { quantization_config: unknown }).quantization_config).toEqual(ref.quantization_config);
      // The smoothed norm weights as written.
      for (const [name, r] of Object.entries(ref.smoothed)) {
        if (!r.values) continue;
        const t = got.get(`${name}.weight`)!;
        const values = Float32Array.from(new Uint16Array(t.bytes.slice().buffer), (b) => new Float32Array(Uint32Array.of(b << 16).buffer)[0]!);
        expect(compare(values, r.values).worst, name).toBeLessThan(bound(model, name));
      }
      for (const [name, want] of Object.entries(ref.smoothed_biases ?? {})) {
        const t = got.get(`${name}.bias`)!;
        const values = Float32Array.from(new Uint16Array(t.bytes.slice().buffer), (b) => new Float32Array(Uint32Array.of(b << 16).buffer)[0]!);
        expect(compare(values, want).worst, `${name}.bias`).toBeLessThan(bound(model, name));
      }
      // The bound means something: the unsmoothed norm weights miss it by far.
      const base = parseSafetensors(new Uint8Array(await readFile(join(modelDir, 'model.safetensors'))));
      const unsmoothed = Object.entries(ref.smoothed).filter(([, r]) => r.values).map(([name, r]) => compare(bf16Values(base.get(`${name}.weight`)!.bytes), r.values!).worst);
      expect(Math.max(...unsmoothed)).toBeGreaterThan(10 * bound(model, 'model.layers.0.'));

      const checkpoint = join(REFS, model, `${variant}.safetensors.gz`);
      if (existsSync(checkpoint)) {
        // Perplexity of llm-compressor's checkpoint (quantc's folder with its model.safetensors), of quantc's, and of
        // W8A8 without smoothing, next to the unquantized model's.
        const lcDir = join(cwd, 'lc');
        await mkdir(lcDir);
        for (const f of await readdir(join(cwd, 'out'))) if (f !== 'model.safetensors') await copyFile(join(cwd, 'out', f), join(lcDir, f));
        await writeFile(join(lcDir, 'model.safetensors'), gunzipSync(await readFile(checkpoint)));
        const rtnCwd = await mkdtemp(join(tmpdir(), 'quantc-sq-rtn-'));
        const plain = Object.fromEntries(ref.recipe.filter((m) => m.modifier !== 'SmoothQuantModifier').map((m) => [m.modifier, m.kwargs]));
        await writeFile(join(rtnCwd, 'recipe.yaml'), `${JSON.stringify({ default_stage: { default_modifiers: plain } }, null, 1)}\n`);
        expect(await main(['apply', 'recipe.yaml', '--model', modelDir, '--out', 'out', '-q'], memoryIo(rtnCwd))).toBe(0);
        const ppl = async (dir: string): Promise<number> => {
          const e = memoryIo(cwd);
          expect(await main(['eval', '--model', dir, '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32', '--format', 'json', '-q'], e)).toBe(0);
          return (JSON.parse(e.out.join('')) as { perplexity: number }).perplexity;
        };
        const [base, ours, theirs, rtn] = [await ppl(modelDir), await ppl(join(cwd, 'out')), await ppl(lcDir), await ppl(join(rtnCwd, 'out'))];
        if (process.env.QUANTC_SQ_RATIOS) console.log(`${model} ${variant}: perplexity base ${base}, quantc ${ours}, llm-compressor ${theirs}, W8A8 unsmoothed ${rtn}`);
        // The swapped-in checkpoint evaluates as llm-compressor's own folder did when the reference was made.
        expect(Math.abs(theirs - ref.perplexity!.checkpoint)).toBeLessThan(1e-9 * theirs);
        // The bound is twice what the forward's precision alone moves llm-compressor's result (its float32 run against its
        // bf16 one: 0.006 of a 0.046 quantization cost on the tiny llama); quantc lands at 0.009, unsmoothed W8A8 at 0.031.
        const noise = Math.abs(ref.perplexity!.checkpoint - ref.perplexity!.f32_run);
        expect(Math.abs(ours - theirs)).toBeLessThan(2 * noise);
        expect(Math.abs(rtn - theirs)).toBeGreaterThan(2 * noise);
        expect(Math.abs(theirs - base)).toBeGreaterThan(2 * noise);
      }

      if (ref.modules) {
        // GPTQ after SmoothQuant, judged as gptq-fidelity.test.ts judges GPTQ: its objective tr(ΔW·H·ΔWᵀ) under llm-compressor's
        // Hessian of each module, from quantc's smoothed weight (what quantc's GPTQ started from) to quantc's written one. A balance
        // layer's input is the norm output divided by the smoothing scales, so H is in llm-compressor's smoothed basis: column c
        // of ΔW moves there by s_llm-compressor[c] / s_quantc[c] (the output error ΔW·x is the same in either basis).
        const basis = new Map<string, Float32Array>();
        for (const [i, r] of ref.mappings.entries()) {
          const mine = run.reports[i]!.scales;
          for (const b of r.balance) basis.set(b, Float32Array.from(r.scales, (t, c) => t / mine[c]!));
        }
        const hessians = parseSafetensors(gunzipSync(await readFile(join(REFS, model, `${variant}.hessians.safetensors.gz`))));
        const index = await openCheckpoint(join(cwd, 'out'));
        const smoothedLinears = run.job.changedWeights!.linears;
        let ours = 0;
        let theirs = 0;
        let rtn = 0;
        for (const [module, m] of Object.entries(ref.modules)) {
          const [rows, cols] = m.shape;
          const h = new Float32Array(hessians.get(m.hessian)!.bytes.slice().buffer);
          const stored = smoothedLinears.get(module);
          const w0 = stored ? bf16Values(stored) : (await readLinear(await openCheckpoint(modelDir), module, 'bfloat16')).data;
          const q = (await readLinear(index, module, 'bfloat16')).data;
          const ratio = basis.get(module);
          const d = Float32Array.from(w0, (v, i) => (v - q[i]!) * (ratio ? ratio[i % cols]! : 1));
          const mineObjective = layerObjective(d, new Float32Array(d.length), h, rows, cols);
          if (process.env.QUANTC_SQ_RATIOS) console.log(`  ${module}: ${(mineObjective / m.objective_checkpoint).toFixed(3)} (${m.objective_checkpoint.toExponential(2)}, rtn ${(m.objective_rtn / m.objective_checkpoint).toFixed(2)})`);
          ours += mineObjective;
          theirs += m.objective_checkpoint;
          rtn += m.objective_rtn;
        }
        if (process.env.QUANTC_SQ_RATIOS) console.log(`${model} ${variant}: GPTQ objective quantc/llm-compressor ${(ours / theirs).toFixed(4)}, rtn ${(rtn / theirs).toFixed(3)}`);
        expect(ours / theirs).toBeLessThan(GPTQ_TOLERANCE);
        expect(rtn / theirs).toBeGreaterThan(GPTQ_TOLERANCE * 1.5);
      }
    });
  }
});
