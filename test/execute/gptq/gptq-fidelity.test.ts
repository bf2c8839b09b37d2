/**
 * GPTQ against llm-compressor's own GPTQ (test/fixtures/gptq, made by
 * make_gptq_refs.py on the same tiny checkpoints and token windows).
 * Integer codes are not the test: they are chaotic under float-order
 * changes. The test is GPTQ's objective tr(ΔW·H·ΔWᵀ) under llm-compressor's
 * Hessian of each module: quantc's weights must score within a few percent
 * of llm-compressor's own, where round-to-nearest with the same scales
 * scores 2-3× worse. Names, dtypes, shapes, quantization_config and the
 * scales observed on the original weights must match exactly.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { toFloat32 } from '../../../src/execute/dtypes.js';
import { readLinear } from '../../../src/execute/forward/dequantize.js';
import { layerObjective } from '../../../src/execute/gptq/objective.js';
import { openCheckpoint } from '../../../src/execute/safetensors-reader.js';
import { storedBlockName } from '../../../src/execute/weight-source.js';
import { CALIBRATION } from '../../calibrate-refs.js';
import { DATAFREE, parseSafetensors, serializeSafetensors, unpackModel } from '../fixtures.js';
import { memoryIo } from '../../memory-io.js';

/** One llm-compressor GPTQ run (see make_gptq_refs.py). */
interface GptqRef {
  readonly recipe: Record<string, unknown>;
  /** The recipe's ignore list, when not the default (`lm_head`, and `re:.*mlp.gate$` for MoE models). */
  readonly ignore?: string[];
  readonly moe_calibrate_all_experts: boolean;
  /** Made on the base tied: config tie_word_embeddings true, lm_head.weight dropped (see make_gptq_refs.py's TIED). */
  readonly tie_word_embeddings?: boolean;
  readonly quantization_config: Record<string, unknown>;
  readonly tensors: Record<string, { dtype: string; shape: number[]; sha256: string; values?: number[] }>;
  readonly modules: Record<string, { hessian: string; hessian_variant?: string; n: number; objective: number; objective_rtn: number; objective_rerun_cross: number; shape: [number, number] }>;
  /** Static input scales (NVFP4's input_global_scale) of llm-compressor's bf16 run and of its float32 run. */
  readonly input_scales?: Record<string, { bf16: number; f32: number }>;
}

const REFS = join(CALIBRATION, '..', 'gptq');
const DEVICE = process.env.QUANTC_TEST_DEVICE ?? 'cpu';
const DTYPES: Record<string, string> = { BF16: 'bfloat16', F32: 'float32', I8: 'int8', F8_E4M3: 'float8_e4m3fn', U8: 'uint8', I32: 'int32', I64: 'int64', F16: 'float16' };


/** Ignore lists of references that do not store theirs, other than the MoE default (llama4: llm-compressor's Llama 4 example). */
const IGNORE: Record<string, string[]> = {
  gpt_oss: ['lm_head'],
  llama4: ['re:.*lm_head', 're:.*self_attn', 're:.*router', 're:.*vision_model.*', 're:.*multi_modal_projector.*', 'Llama4TextAttention'],
};
/** Models whose fused experts are stored `[E, in, out]`. */
const TRANSPOSED = new Set(['gpt_oss', 'llama4']);

/** The data-free base checkpoint the references were made from, with the calibration tokenizer (made tied for tied references). */
async function baseWithTokenizer(model: string, tied = false): Promise<string> {
  const dir = await unpackModel(join(DATAFREE, model, 'base'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await writeFile(join(dir, f), await readFile(join(CALIBRATION, f)));
  if (tied) {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: true }, null, 2));
    const tensors = parseSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))));
    tensors.delete('lm_head.weight');
    await writeFile(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
  }
  return dir;
}

function recipeYaml(ref: GptqRef, moe: boolean, model: string): string {
  const ignore = ref.ignore ?? IGNORE[model] ?? (moe ? ['lm_head', 're:.*mlp.gate$'] : ['lm_head']);
  const modifier = { ...ref.recipe, ignore };
  return `${JSON.stringify({ ...(moe ? { quantc: { moe: { calibrate_all_experts: ref.moe_calibrate_all_experts } } } : {}), default_stage: { default_modifiers: { GPTQModifier: modifier } } }, null, 1)}\n`;
}

const CASES = existsSync(REFS) ? readdirSync(REFS).flatMap((model) => readdirSync(join(REFS, model)).map((variant) => [model, variant] as const)) : [];

/**
 * How much worse than llm-compressor quantc may score. Measured noise
 * (make_gptq_refs.py): llm-compressor's own reruns (threads, window order,
 * a float64 solve) move the summed objective by < 1e-4; its bf16 GPTQ fed
 * the Hessians of a float32 forward — what quantc's float32 forward amounts
 * to — lands at 0.965–1.062 of the bf16 run summed (qwen3_moe the widest),
 * and small modules (objectives near 1e-4, layer-1 o_proj and expert
 * down_proj) swing up to 2.5× alone. Round-to-nearest with the same scales
 * scores 2.1–3.7× summed and must fail the bound.
 */
const TOTAL_TOLERANCE = 1.1;
/** Per module: this factor, or an excess of at most this share of the variant's summed objective (tiny modules). */
const MODULE_TOLERANCE = 1.35;
const MODULE_FLOOR = 0.002;

describe("GPTQ reaches llm-compressor's objective (bf16 model, 32-token windows, batch size 1)", () => {
  test('has reference cases', () => expect(CASES.length).toBeGreaterThan(0));
  // Both solves: JavaScript with GEMMs on onnxruntime, and the whole solve on graphs (QUANTC_GPTQ_SOLVE).
  for (const [model, variant, solve] of CASES.flatMap(([m, v]) => (['js', 'graph'] as const).map((s) => [m, v, s] as const))) {
    test(`${model} ${variant} (${solve} solve)`, async () => {
      const dir = join(REFS, model, variant);
      const ref = JSON.parse(gunzipSync(await readFile(join(dir, 'ref.json.gz'))).toString('utf8')) as GptqRef;
      // Variants that see the same inputs share Hessians, stored once under the variant named by `hessian_variant`.
      const files = new Map<string, ReturnType<typeof parseSafetensors>>();
      const hessianOf = async (m: GptqRef['modules'][string]): Promise<Float32Array> => {
        const v = m.hessian_variant ?? variant;
        if (!files.has(v)) files.set(v, parseSafetensors(gunzipSync(await readFile(join(REFS, model, v, 'hessians.safetensors.gz')))));
        return new Float32Array(files.get(v)!.get(m.hessian)!.bytes.slice().buffer);
      };
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-gptq-ref-'));
      await writeFile(join(cwd, 'recipe.yaml'), recipeYaml(ref, model !== 'llama', model));
      const io = memoryIo(cwd);
      const before = process.env.QUANTC_GPTQ_SOLVE;
      process.env.QUANTC_GPTQ_SOLVE = solve;
      let code: number;
      try {
        code = await main(['apply', 'recipe.yaml', '--model', await baseWithTokenizer(model, ref.tie_word_embeddings), '--out', 'out', '--data', join(CALIBRATION, 'text.txt'), '--seq-len', '32', '--device', DEVICE], io);
      } finally {
        if (before === undefined) delete process.env.QUANTC_GPTQ_SOLVE;
        else process.env.QUANTC_GPTQ_SOLVE = before;
      }
      expect(io.err.join(''), io.err.join('')).not.toMatch(/ error [a-z-]+:|warning (gptq|apply|smoothquant)-/);
      expect(code).toBe(0);

      const out = join(cwd, 'out');
      const got = parseSafetensors(new Uint8Array(await readFile(join(out, 'model.safetensors'))));
      expect([...got.keys()].sort()).toEqual(Object.keys(ref.tensors).sort());
      const groupOrdered = Object.keys(ref.tensors).some((n) => n.endsWith('weight_g_idx'));
      for (const [name, r] of Object.entries(ref.tensors)) {
        const g = got.get(name)!;
        expect({ name, dtype: DTYPES[g.dtype], shape: g.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
        // Scales observed on the original weight are exact; with group ordering they follow a permutation of the Hessian diagonal.
        if (!groupOrdered && /\.weight_(scale|global_scale|zero_point)$/.test(name)) expect(createHash('sha256').update(g.bytes).digest('hex'), name).toBe(r.sha256);
        // GPTQ's weights (decoder layers', and lm_head's where the recipe targets it) are judged by the objective below.
        const solved = name.endsWith('.weight') && name.slice(0, -'.weight'.length) in ref.modules;
        const inputScale = ref.input_scales !== undefined && name in ref.input_scales;
        if (!solved && !inputScale && (!/\.weight_(packed|scale|global_scale|zero_point|shape|g_idx)$|^model\.layers\.\d+\..*\.weight$/.test(name) || name.endsWith('norm.weight'))) {
          expect(createHash('sha256').update(g.bytes).digest('hex'), name).toBe(r.sha256);
        }
      }
      const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { quantization_config: unknown };
      expect(config.quantization_config).toEqual(ref.quantization_config);
      if (ref.input_scales) {
        // Static input scales come from the calibration forward, which quantc runs in float32 and llm-compressor in
        // bf16: the bound is twice the widest bf16-vs-float32 gap llm-compressor itself shows on this variant (3.5%
        // for NVFP4, on layer 1, whose input follows differently solved layer-0 weights). Layer 0 sees the float32
        // input of llm-compressor's float32 run; its amax then takes the bf16 model's roundings: the observed amax
        // in bf16, FP8·FP4 max / amax, the global scale in bf16.
        const gap = Math.max(...Object.values(ref.input_scales).map((v) => Math.abs(v.bf16 - v.f32) / v.f32));
        for (const [name, v] of Object.entries(ref.input_scales)) {
          const mine = new Float32Array(got.get(name)!.bytes.slice().buffer)[0]!;
          if (process.env.QUANTC_GPTQ_RATIOS) console.log(`  ${name}: ${mine} (bf16 run ${v.bf16}, float32 run ${v.f32})`);
          expect(Math.abs(mine - v.bf16) / v.bf16, name).toBeLessThan(2 * gap);
          if (/^model\.layers\.0\./.test(name)) expect(mine, name).toBe(bf16(Math.fround(448 * 6 / bf16(Math.fround(448 * 6 / v.f32)))));
        }
      }

      const index = await openCheckpoint(out);
      let ours = 0;
      let theirs = 0;
      let rtn = 0;
      let rerun = 0;
      const perModule: { module: string; mine: number; theirs: number }[] = [];
      for (const [module, m] of Object.entries(ref.modules)) {
        const [rows, cols] = m.shape;
        const hessian = await hessianOf(m);
        // A tied lm_head starts from the embedding's weight.
        const w0 = await originalWeight(model, ref.tie_word_embeddings && module === 'lm_head' ? 'model.embed_tokens' : module);
        const q = (await readLinear(index, storedBlockName(index, module), 'bfloat16')).data;
        const mine = layerObjective(w0, q, hessian, rows, cols);
        if (process.env.QUANTC_GPTQ_RATIOS) console.log(`  ${module}: ${(mine / m.objective).toFixed(3)} (${m.objective.toExponential(2)})`);
        perModule.push({ module, mine, theirs: m.objective });
        ours += mine;
        theirs += m.objective;
        rtn += m.objective_rtn;
        rerun += m.objective_rerun_cross;
      }
      if (process.env.QUANTC_GPTQ_RATIOS) console.log(`${model} ${variant} (${solve}): quantc/llm-compressor ${(ours / theirs).toFixed(4)}, rerun ${(rerun / theirs).toFixed(4)}, rtn ${(rtn / theirs).toFixed(3)}`);
      expect(ours / theirs).toBeLessThan(TOTAL_TOLERANCE);
      for (const p of perModule) expect(p.mine, p.module).toBeLessThan(Math.max(MODULE_TOLERANCE * p.theirs, p.theirs + MODULE_FLOOR * theirs));
      // The bound must be one round-to-nearest cannot meet, and llm-compressor's own rerun can.
      expect(rtn / theirs).toBeGreaterThan(TOTAL_TOLERANCE * 1.5);
      expect(rerun / theirs).toBeLessThan(TOTAL_TOLERANCE);
    });
  }
});

/** `x` rounded to bfloat16 (nearest, ties to even). */
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = (u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) & 0xffff0000;
  return f[0]!;
}

const originals = new Map<string, Promise<Awaited<ReturnType<typeof openCheckpoint>>>>();

/** The base checkpoint's weight of `module` (per-expert slices of fused tensors included). */
async function originalWeight(model: string, module: string): Promise<Float32Array> {
  if (!originals.has(model)) originals.set(model, baseWithTokenizer(model).then(openCheckpoint));
  const index = await originals.get(model)!;
  const direct = index.tensors.get(`${module}.weight`);
  if (direct) return (await readLinear(index, module, 'bfloat16')).data;
  const { resolveWeight, readWeight } = await import('../../../src/execute/weight-source.js');
  const m = /^(.*\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)$/.exec(module)!;
  const fused = [
    { tensor: `${m[1]}.gate_up_proj`, expertsModule: m[1]!, transposed: TRANSPOSED.has(model), projections: ['gate_proj', 'up_proj'] },
    { tensor: `${m[1]}.down_proj`, expertsModule: m[1]!, transposed: TRANSPOSED.has(model), projections: ['down_proj'] },
  ];
  const src = resolveWeight(index, module, fused)!;
  return toFloat32(await readWeight(src), 'BF16');
}
