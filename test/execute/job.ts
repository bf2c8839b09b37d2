/**
 * Builds the executor job for a reference fixture the way the planner
 * would: one preset config group targeting Linear, the modules
 * llm-compressor quantized, and the ignore list it wrote.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { presetScheme } from '../../src/ir/presets.js';
import type { ApplyJob, FusedExpertsParam } from '../../src/execute/types.js';
import { offsetNormTensors } from '../../src/execute/offset-norms.js';
import { loadModel } from '../../src/model/load.js';
import { DATAFREE, readRefTensors, type RefTensor } from './fixtures.js';

/** The planner's name for a module llm-compressor wrote: a mixtral (or phimoe) checkpoint's `block_sparse_moe` is transformers 5's `mlp`; GraniteMoE keeps `block_sparse_moe`. */
function inMemoryName(model: string, name: string): string {
  if (model === 'granitemoe') return name;
  return name.replace(/\.block_sparse_moe\./, '.mlp.').replace(/\.block_sparse_moe$/, '.mlp');
}

/** GraniteMoE's fused experts as the planner unpacks them (stored as `input_linear` / `output_linear`). */
function graniteFusedExperts(modules: readonly string[]): FusedExpertsParam[] {
  const blocks = [...new Set(modules.map((m) => /^(.*\.block_sparse_moe\.experts)\.\d+\./.exec(m)?.[1]).filter((m): m is string => m !== undefined))];
  return blocks.flatMap((expertsModule) => [
    { tensor: `${expertsModule}.gate_up_proj`, expertsModule, transposed: false, projections: ['gate_proj', 'up_proj'] },
    { tensor: `${expertsModule}.down_proj`, expertsModule, transposed: false, projections: ['down_proj'] },
  ]);
}

/** A job for `model`/`scheme`, its output folder, and the reference output. */
export async function referenceJob(
  model: string,
  scheme: string,
  modelDir: string,
  fusedExperts: readonly FusedExpertsParam[] = [],
): Promise<{ job: ApplyJob; ref: Map<string, RefTensor>; refDir: string }> {
  const refDir = join(DATAFREE, model, scheme);
  const ref = await readRefTensors(refDir);
  const refConfig = JSON.parse(await readFile(join(refDir, 'config.json'), 'utf8')) as { quantization_config: { ignore: string[] } };
  const modules = [...ref.keys()]
    .filter((k) => k.endsWith('.weight_scale'))
    .map((k) => inMemoryName(model, k.slice(0, -'.weight_scale'.length)))
    .sort();
  const outDir = join(await mkdtemp(join(tmpdir(), 'quantc-out-')), 'out');
  // The zero-centred norms of the model's module tree (qwen3_next), as the planner finds them.
  const loaded = loadModel(modelDir);
  const offsetNorms = loaded.value ? offsetNormTensors(loaded.value.tree) : [];
  const job: ApplyJob = {
    modelDir,
    outDir,
    device: 'cpu',
    groups: [{ name: 'group_0', scheme: presetScheme(scheme, ['Linear'])! }],
    modules: modules.map((name) => ({ name, group: 0 })),
    fusedExperts: fusedExperts.length > 0 || model !== 'granitemoe' ? fusedExperts : graniteFusedExperts(modules),
    ignore: refConfig.quantization_config.ignore.map((n) => inMemoryName(model, n)),
    kvCacheScheme: null,
    recipeYaml: await readFile(join(refDir, 'recipe.yaml'), 'utf8'),
    ...(offsetNorms.length > 0 ? { offsetNorms } : {}),
  };
  return { job, ref, refDir };
}
