import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { applyJob } from '../src/execute/apply.js';
import { DATAFREE, manifest, parseSafetensors, unpackModel, type RefTensor } from './execute/fixtures.js';
import { referenceJob } from './execute/job.js';

/** Every tensor equal to llm-compressor's, byte for byte. */
function expectSameTensors(got: Map<string, RefTensor>, ref: Map<string, RefTensor>): void {
  expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
  for (const [name, r] of ref) {
    const g = got.get(name)!;
    expect({ name, dtype: g.dtype, shape: g.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
    const same = Buffer.compare(Buffer.from(g.bytes), Buffer.from(r.bytes)) === 0;
    expect(same, `${name} bytes differ`).toBe(true);
  }
}

const models = await manifest();
/** Stored with fused experts, which the planner splits (see test/execute-moe-families.test.ts, which applies them through it). */
const PLANNED = new Set(['gpt_oss', 'llama4', 'qwen3_vl_moe']);

describe('apply (data-free) reproduces llm-compressor main', () => {
  for (const [model, spec] of Object.entries(models)) {
    if (PLANNED.has(model)) continue;
    for (const scheme of spec.schemes) {
      test(`${model} ${scheme}`, async () => {
        const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
        const { job, ref, refDir } = await referenceJob(model, scheme, modelDir);
        // The CPU's default: round-to-nearest in loops (blocks in graphs).
        const summary = await applyJob(job);
        const got = parseSafetensors(new Uint8Array(await readFile(join(job.outDir, 'model.safetensors'))));
        expectSameTensors(got, ref);
        expect(await readFile(join(job.outDir, 'config.json'), 'utf8')).toBe(await readFile(join(refDir, 'config.json'), 'utf8'));
        expect(await readFile(join(job.outDir, 'recipe.yaml'), 'utf8')).toBe(job.recipeYaml);
        expect(await readFile(join(job.outDir, 'generation_config.json'), 'utf8')).toBe(await readFile(join(modelDir, 'generation_config.json'), 'utf8'));
        expect((await readdir(job.outDir)).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'recipe.yaml']);
        expect(summary.quantized).toBe(job.modules.length);
        expect(summary.bytesOut).toBeLessThan(summary.bytesIn);
      });
    }
  }
  // The graphs on the CPU provider, in small slices so that every weight is quantized in several graph runs.
  for (const [model, spec] of Object.entries(models)) {
    if (PLANNED.has(model)) continue;
    for (const scheme of spec.schemes) {
      test(`${model} ${scheme} through the graphs in slices`, async () => {
        const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
        const { job, ref } = await referenceJob(model, scheme, modelDir);
        await applyJob({ ...job, chunkElements: 4096, cpuLoops: false });
        expectSameTensors(parseSafetensors(new Uint8Array(await readFile(join(job.outDir, 'model.safetensors')))), ref);
      });
    }
  }
  // The CUDA configuration (whole weights, bf16 widened and FP8 encoded inside the graphs; symmetric FP8 and integers observed there too, same-shaped ones stacked into one run) on the CPU provider.
  for (const [model, scheme] of [
    ['llama', 'W4A16_ASYM'],
    ['llama', 'W4A16'],
    ['llama', 'W8A8'],
    ['llama', 'W3A16'],
    ['llama', 'FP8_DYNAMIC'],
    ['llama_fp16', 'FP8_DYNAMIC'],
    ['llama', 'FP8_BLOCK'],
    ['llama', 'MXFP4'],
    ['llama', 'MXFP8'],
    ['glm4_moe_lite', 'NVFP4A16'],
  ] as const) {
    test(`${model} ${scheme} with whole weights, bf16 decoding and FP8 encoding in the graph`, async () => {
      const modelDir = await unpackModel(join(DATAFREE, model, 'base'));
      const { job, ref } = await referenceJob(model, scheme, modelDir);
      await applyJob({ ...job, chunkElements: null, decodeBf16InGraph: true, encodeFp8InGraph: true, cpuLoops: false });
      expectSameTensors(parseSafetensors(new Uint8Array(await readFile(join(job.outDir, 'model.safetensors')))), ref);
    });
  }
});
