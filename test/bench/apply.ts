/**
 * Weight-pass benchmark for `apply`: a synthetic bf16 checkpoint of square
 * Linear weights is quantized with a few data-free schemes; throughput is
 * bf16 bytes read per second of weight processing (read, observe, quantize,
 * pack, write), and end to end.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyJob } from '../../src/execute/apply.js';
import type { Device } from '../../src/execute/runtime.js';
import { SafetensorsFileWriter, type OutputTensorSpec } from '../../src/execute/safetensors-writer.js';
import { presetScheme } from '../../src/ir/presets.js';

/** One benchmark result. */
export interface ApplyBenchResult {
  readonly scheme: string;
  readonly device: Device;
  readonly tensors: number;
  readonly shape: readonly [number, number];
  readonly bytesIn: number;
  /** bf16 weight bytes per second of weight processing, in GB/s. */
  readonly weightGBps: number;
  /** bf16 weight bytes per second of the whole run (including copying and setup), in GB/s. */
  readonly endToEndGBps: number;
  readonly seconds: number;
}

/** Options of {@link benchApply}. */
export interface ApplyBenchOptions {
  readonly schemes?: readonly string[];
  readonly tensors?: number;
  readonly rows?: number;
  readonly cols?: number;
  readonly device?: Device;
}

function randomBf16(count: number, seed: number): Uint8Array {
  // Normal-ish values (std ≈ 0.02) from a xorshift generator; only the magnitude distribution matters.
  const out = new Uint16Array(count);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const a = (s >>> 0) / 4294967296;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const b = (s >>> 0) / 4294967296;
    f[0] = 0.02 * (a + b - 1) * 2.45;
    out[i] = u[0] >>> 16;
  }
  return new Uint8Array(out.buffer);
}

/** Writes the synthetic checkpoint and returns its folder and Linear names. */
async function syntheticModel(tensors: number, rows: number, cols: number): Promise<{ dir: string; modules: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'quantc-bench-'));
  const modules = Array.from({ length: tensors }, (_, i) => `model.layers.${i}.mlp.down_proj`);
  const specs: OutputTensorSpec[] = modules.map((m) => ({ name: `${m}.weight`, dtype: 'BF16', shape: [rows, cols], byteLength: rows * cols * 2 }));
  const w = await SafetensorsFileWriter.create(join(dir, 'model.safetensors'), specs);
  for (let i = 0; i < tensors; i++) await w.write(specs[i].name, randomBf16(rows * cols, i + 1));
  await w.close();
  await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'] }, null, 2));
  return { dir, modules };
}

/** Runs the benchmark; defaults: W4A16, FP8_DYNAMIC, NVFP4A16 on 8 × [4096, 4096] bf16 (256 MiB) on the CPU. */
export async function benchApply(options: ApplyBenchOptions = {}): Promise<ApplyBenchResult[]> {
  const schemes = options.schemes ?? ['W4A16', 'FP8_DYNAMIC', 'NVFP4A16'];
  const tensors = options.tensors ?? 8;
  const rows = options.rows ?? 4096;
  const cols = options.cols ?? 4096;
  const device = options.device ?? 'cpu';
  const { dir, modules } = await syntheticModel(tensors, rows, cols);
  const results: ApplyBenchResult[] = [];
  try {
    for (const scheme of schemes) {
      const out = join(dir, `out-${scheme}`);
      const summary = await applyJob({
        modelDir: dir,
        outDir: out,
        device,
        groups: [{ name: 'group_0', scheme: presetScheme(scheme, ['Linear'])! }],
        modules: modules.map((name) => ({ name, group: 0 })),
        fusedExperts: [],
        ignore: [],
        kvCacheScheme: null,
        recipeYaml: '',
      });
      results.push({
        scheme,
        device,
        tensors,
        shape: [rows, cols],
        bytesIn: summary.bytesIn,
        weightGBps: summary.weightGBps,
        endToEndGBps: summary.bytesIn / summary.seconds / 1e9,
        seconds: summary.seconds,
      });
      await rm(out, { recursive: true, force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

if (process.argv[1]?.endsWith('apply.js')) {
  const device = (process.argv[2] as Device | undefined) ?? 'cpu';
  for (const r of await benchApply({ device })) {
    console.log(`${r.scheme.padEnd(12)} ${r.device}  ${(r.bytesIn / 2 ** 20).toFixed(0)} MiB bf16  weight pass ${r.weightGBps.toFixed(3)} GB/s  end to end ${r.endToEndGBps.toFixed(3)} GB/s  (${r.seconds.toFixed(2)} s)`);
  }
}
