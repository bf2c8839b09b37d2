/**
 * The `quantization_config` block llm-compressor main writes into
 * `config.json` (compressed-tensors 0.18 `QuantizationConfig`, status
 * `compressed`), built from the job's config groups and ignore list.
 */
import type { QuantizationArgs } from '../ir/types.js';
import { inferFormat } from './rtn/weight-kernel.js';
import type { ApplyJob } from './types.js';

/** compressed-tensors version recorded in checkpoints. */
export const COMPRESSED_TENSORS_VERSION = '0.18.0';

function argsJson(a: QuantizationArgs | null): Record<string, unknown> | null {
  if (!a) return null;
  return {
    actorder: a.actorder,
    block_structure: a.block_structure ? [...a.block_structure] : null,
    dynamic: a.dynamic,
    group_size: a.group_size,
    num_bits: a.num_bits,
    observer: a.observer,
    observer_kwargs: { ...a.observer_kwargs },
    scale_dtype: a.scale_dtype,
    strategy: a.strategy,
    symmetric: a.symmetric,
    type: a.type,
    zp_dtype: a.zp_dtype,
  };
}

/** The `quantization_config` object (plain data; keys are sorted when dumped). */
export function quantizationConfig(job: Pick<ApplyJob, 'groups' | 'ignore' | 'kvCacheScheme'>): Record<string, unknown> {
  const groups: Record<string, unknown> = {};
  const formats = new Set<string>();
  for (const g of job.groups) {
    const format = inferFormat(g.scheme);
    formats.add(format);
    groups[g.name] = {
      format,
      input_activations: argsJson(g.scheme.input_activations),
      output_activations: argsJson(g.scheme.output_activations),
      targets: [...g.scheme.targets],
      weights: argsJson(g.scheme.weights),
    };
  }
  return {
    config_groups: groups,
    format: formats.size === 1 ? [...formats][0] : formats.size === 0 ? 'dense' : 'mixed-precision',
    global_compression_ratio: null,
    ignore: [...job.ignore],
    kv_cache_scheme: argsJson(job.kvCacheScheme),
    quant_method: 'compressed-tensors',
    quantization_status: 'compressed',
    sparsity_config: {},
    transform_config: {},
    version: COMPRESSED_TENSORS_VERSION,
  };
}
