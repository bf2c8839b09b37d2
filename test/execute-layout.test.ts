import { mkdtemp, readdir, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { applyJob } from '../src/execute/apply.js';
import { openCheckpoint, readTensorBytes } from '../src/execute/safetensors-reader.js';
import { SafetensorsFileWriter, type OutputTensorSpec } from '../src/execute/safetensors-writer.js';
import type { FusedExpertsParam } from '../src/execute/types.js';
import { DATAFREE, parseSafetensors, unpackModel, type RefTensor } from './execute/fixtures.js';
import { referenceJob } from './execute/job.js';

async function readAll(dir: string): Promise<Map<string, RefTensor>> {
  const index = await openCheckpoint(dir);
  const out = new Map<string, RefTensor>();
  for (const t of index.tensors.values()) out.set(t.name, { dtype: t.dtype, shape: [...t.shape], bytes: await readTensorBytes(t) });
  return out;
}

function expectEqual(got: Map<string, RefTensor>, ref: Map<string, RefTensor>): void {
  expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
  for (const [name, r] of ref) {
    const g = got.get(name)!;
    expect(g.dtype, name).toBe(r.dtype);
    expect(g.shape, name).toEqual(r.shape);
    expect(Buffer.compare(Buffer.from(g.bytes), Buffer.from(r.bytes)), `${name} bytes`).toBe(0);
  }
}

/** Rewrites qwen3_moe's per-expert weights as transformers 5 fused 3-D parameters. */
async function fuseExperts(modelDir: string, transposed: boolean): Promise<FusedExpertsParam[]> {
  const index = await openCheckpoint(modelDir);
  const tensors = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>();
  for (const t of index.tensors.values()) tensors.set(t.name, { dtype: t.dtype, shape: [...t.shape], bytes: await readTensorBytes(t) });
  const params: FusedExpertsParam[] = [];
  for (const layer of [0, 1]) {
    const prefix = `model.layers.${layer}.mlp.experts`;
    const experts = [0, 1, 2, 3];
    const fuse = (projs: string[], name: string): void => {
      const slabs = experts.map((e) => {
        const parts = projs.map((p) => tensors.get(`${prefix}.${e}.${p}.weight`)!);
        const rows = parts.reduce((a, p) => a + p.shape[0], 0);
        const cols = parts[0].shape[1];
        const slab = new Uint16Array(rows * cols);
        let r0 = 0;
        for (const p of parts) {
          const src = new Uint16Array(p.bytes.slice().buffer);
          for (let r = 0; r < p.shape[0]; r++) {
            for (let c = 0; c < cols; c++) {
              if (transposed) slab[c * rows + r0 + r] = src[r * cols + c];
              else slab[(r0 + r) * cols + c] = src[r * cols + c];
            }
          }
          r0 += p.shape[0];
        }
        for (const p of projs) tensors.delete(`${prefix}.${e}.${p}.weight`);
        return { bytes: new Uint8Array(slab.buffer), shape: transposed ? [cols, rows] : [rows, cols] };
      });
      const all = new Uint8Array(slabs.reduce((a, s) => a + s.bytes.length, 0));
      slabs.forEach((s, i) => all.set(s.bytes, i * s.bytes.length));
      tensors.set(`${prefix}.${name}`, { dtype: 'BF16', shape: [experts.length, ...slabs[0].shape], bytes: all });
      params.push({ tensor: `${prefix}.${name}`, expertsModule: prefix, transposed, projections: projs });
    };
    fuse(['gate_proj', 'up_proj'], 'gate_up_proj');
    fuse(['down_proj'], 'down_proj');
  }
  const specs: OutputTensorSpec[] = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype as OutputTensorSpec['dtype'], shape: t.shape, byteLength: t.bytes.length }));
  await rm(join(modelDir, 'model.safetensors'));
  const w = await SafetensorsFileWriter.create(join(modelDir, 'model.safetensors'), specs);
  for (const s of specs) await w.write(s.name, tensors.get(s.name)!.bytes);
  await w.close();
  return params;
}

describe('apply output layout', () => {
  for (const transposed of [false, true]) {
    test(`fused 3-D experts (${transposed ? 'transposed' : 'not transposed'}) are written per expert, as llm-compressor does`, async () => {
      const modelDir = await unpackModel(join(DATAFREE, 'qwen3_moe', 'base'));
      const fused = await fuseExperts(modelDir, transposed);
      for (const scheme of ['W4A16', 'NVFP4A16']) {
        const { job, ref } = await referenceJob('qwen3_moe', scheme, modelDir, fused);
        await applyJob(job);
        const got = parseSafetensors(new Uint8Array(await readFile(join(job.outDir, 'model.safetensors'))));
        expectEqual(got, ref);
      }
    });
  }

  test('fused experts that are not quantized are written per expert, unquantized', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'qwen3_moe', 'base'));
    const original = await readAll(modelDir);
    const fused = await fuseExperts(modelDir, false);
    const { job } = await referenceJob('qwen3_moe', 'W4A16', modelDir, fused);
    await applyJob({ ...job, modules: job.modules.filter((m) => !m.name.includes('experts.2.')) });
    const got = await readAll(job.outDir);
    for (const p of ['gate_proj', 'up_proj', 'down_proj']) {
      const name = `model.layers.1.mlp.experts.2.${p}.weight`;
      expect(got.get(name)).toEqual(original.get(name));
    }
    expect([...got.keys()].some((k) => k.endsWith('gate_up_proj'))).toBe(false);
  });

  test('sharded output has an index and the same tensors', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const { job, ref } = await referenceJob('llama', 'W4A16', modelDir);
    await applyJob({ ...job, maxShardBytes: 100_000 });
    const files = (await readdir(job.outDir)).filter((f) => f.endsWith('.safetensors'));
    expect(files.length).toBeGreaterThan(1);
    expect(files[0]).toMatch(/^model-00001-of-\d{5}\.safetensors$/);
    const index = JSON.parse(await readFile(join(job.outDir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    expect(Object.keys(index.weight_map).sort()).toEqual([...ref.keys()].sort());
    expectEqual(await readAll(job.outDir), ref);
    // A sharded input is read through its index.
    const again = await referenceJob('llama', 'W4A16', job.outDir);
    expect((await openCheckpoint(again.job.modelDir)).tensors.size).toBe(ref.size);
  });

  test('--out inside the model folder is not copied into itself', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const { job, ref } = await referenceJob('llama', 'W4A16', modelDir);
    const outDir = join(modelDir, 'quantized');
    await applyJob({ ...job, outDir });
    expect((await readdir(outDir)).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'recipe.yaml']);
    expectEqual(await readAll(outDir), ref);
  });

  test('an existing --out is never overwritten', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const { job } = await referenceJob('llama', 'W4A16', modelDir);
    await mkdir(job.outDir);
    await writeFile(join(job.outDir, 'keep.txt'), 'mine');
    await expect(applyJob(job)).rejects.toThrow(/already exists/);
    expect(await readdir(job.outDir)).toEqual(['keep.txt']);
  });

  test('a failure leaves neither the output nor a temporary folder, and the input is untouched', async () => {
    const modelDir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const before = await readdir(modelDir);
    const beforeStat = await stat(join(modelDir, 'model.safetensors'));
    const { job } = await referenceJob('llama', 'W4A16', modelDir);
    const parent = join(job.outDir, '..');
    const bad = { ...job, modules: [...job.modules, { name: 'model.layers.0.mlp.nonexistent_proj', group: 0 }] };
    await expect(applyJob(bad)).rejects.toThrow(/nonexistent_proj/);
    expect(await readdir(parent)).toEqual([]);
    expect(await readdir(modelDir)).toEqual(before);
    expect((await stat(join(modelDir, 'model.safetensors'))).mtimeMs).toBe(beforeStat.mtimeMs);
    // A scheme the weights do not fit is refused before anything is written.
    const badGroup = { ...job, groups: [{ name: 'group_0', scheme: { ...job.groups[0].scheme, weights: { ...job.groups[0].scheme.weights!, group_size: 96 } } }] };
    await expect(applyJob(badGroup)).rejects.toThrow(/not divisible by group_size 96/);
    expect(await readdir(parent)).toEqual([]);
    await rm(parent, { recursive: true });
  });
});

describe('staged output folder', () => {
  test('Ctrl-C removes the temporary folder and exits 130; commit renames it into place', async () => {
    const { stageOutputDir } = await import('../src/execute/output-dir.js');
    const { vi } = await import('vitest');
    const parent = await mkdtemp(join(tmpdir(), 'quantc-stage-'));
    const listeners = process.listenerCount('SIGINT');
    const staged = await stageOutputDir(join(parent, 'out'));
    await writeFile(join(staged.path, 'model.safetensors'), 'partial');
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    try {
      process.emit('SIGINT', 'SIGINT');
      expect(exit).toHaveBeenCalledWith(130);
    } finally {
      exit.mockRestore();
    }
    expect(await readdir(parent)).toEqual([]);
    await staged.discard();

    const second = await stageOutputDir(join(parent, 'out'));
    await writeFile(join(second.path, 'config.json'), '{}');
    await second.commit();
    expect(await readdir(parent)).toEqual(['out']);
    expect(await readdir(join(parent, 'out'))).toEqual(['config.json']);
    expect(process.listenerCount('SIGINT')).toBe(listeners);
  });
});
