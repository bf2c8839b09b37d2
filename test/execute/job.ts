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

/** The planner's name for a module llm-compressor wrote: a mixtral checkpoint's `block_sparse_moe` is transformers 5's `mlp`. */
function inMemory(name: string): string {
  return name.replace(/\.block_sparse_moe\./, '.mlp.').replace(/\.block_sparse_moe$/, '.mlp');
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
    .map((k) => inMemory(k.slice(0, -'.weight_scale'.length)))
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
    fusedExperts,
    ignore: refConfig.quantization_config.ignore.map(inMemory),
    kvCacheScheme: null,
    recipeYaml: await readFile(join(refDir, 'recipe.yaml'), 'utf8'),
    ...(offsetNorms.length > 0 ? { offsetNorms } : {}),
  };
  return { job, ref, refDir };
}
