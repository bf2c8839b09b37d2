/**
 * The calibrated tensors compressed-tensors saves for activation schemes:
 * which statistic each input (or kv-cache) argument reads, and the
 * `input_scale` / `input_zero_point` / `input_global_scale` / `k_scale` /
 * `v_scale` tensors computed from it, in the dtypes and shapes
 * llm-compressor writes.
 */
import type { QuantizationArgs } from '../../ir/types.js';
import { bf16Bytes, f16Bytes } from '../dtypes.js';
import type { WeightDtype } from '../rtn/weight-kernel.js';
import type { ApplyJob, ExtraTensor } from '../types.js';
import { fp8InputScale, intInputQParams, nvfp4GlobalScale, type MinMax } from './observers.js';

/**
 * Which statistic an observer keeps: `running` is `static_minmax` (min/max
 * over every batch), `last-batch` is `memoryless_minmax` (the default of
 * static arguments that name no observer: only the last batch counts).
 */
export type ObserverKind = 'running' | 'last-batch';

/** What calibration must produce for one quantized input or kv cache. */
export interface ActivationCalibration {
  /** `fp8`: a static FP8 per-tensor scale; `int`: an integer per-tensor scale (and zero point); `nvfp4`: the NVFP4 global scale. */
  readonly kind: 'fp8' | 'int' | 'nvfp4';
  readonly observer: ObserverKind;
  readonly bits: number;
  readonly symmetric: boolean;
  /** kv cache `strategy: attn_head`: one scale per KV head, `[heads, 1, 1]`. */
  readonly perHead?: boolean;
}

/** An activation argument apply cannot calibrate; the message is user-facing. */
export class UnsupportedActivationError extends Error {}

function observerKind(args: QuantizationArgs, what: string): ObserverKind {
  const observer = args.observer ?? (args.dynamic === false ? 'memoryless_minmax' : 'minmax');
  if (observer === 'static_minmax') return 'running';
  if (observer === 'memoryless_minmax') return 'last-batch';
  throw new UnsupportedActivationError(`${what}: the "${observer}" observer is not supported by apply; use static_minmax or memoryless_minmax`);
}

/**
 * What calibrating input activations `args` requires, or null when they need
 * nothing (none, or dynamic per-token/per-group scales computed at run time).
 */
export function inputCalibration(args: QuantizationArgs | null, what: string): ActivationCalibration | null {
  if (!args || args.dynamic === true) return null;
  if (args.dynamic === 'local') {
    if (args.strategy === 'tensor_group' && args.type === 'float' && args.num_bits === 4) return { kind: 'nvfp4', observer: observerKind(args, what), bits: 4, symmetric: true };
    throw new UnsupportedActivationError(`${what}: dynamic "local" input activations are supported only as NVFP4 (4-bit float, tensor_group)`);
  }
  if (args.strategy !== 'tensor') throw new UnsupportedActivationError(`${what}: static input activations with strategy "${args.strategy}" are not supported by apply; only per-tensor ("tensor") static scales are`);
  if (args.type === 'float') {
    if (args.num_bits !== 8 || !args.symmetric) throw new UnsupportedActivationError(`${what}: static float input activations must be 8-bit and symmetric (FP8)`);
    return { kind: 'fp8', observer: observerKind(args, what), bits: 8, symmetric: true };
  }
  if (args.num_bits > 8) throw new UnsupportedActivationError(`${what}: static integer input activations of ${args.num_bits} bits are not supported (at most 8)`);
  return { kind: 'int', observer: observerKind(args, what), bits: args.num_bits, symmetric: args.symmetric };
}

/** Whether a job's calibrated tensors need a statistics pass (static input activations, a kv cache). */
export function needsStatistics(job: Pick<ApplyJob, 'groups' | 'kvCacheScheme'>): boolean {
  return job.kvCacheScheme !== null || job.groups.some((g) => inputCalibration(g.scheme.input_activations, g.name) !== null);
}

/** What calibrating the kv cache with `args` requires (per-tensor symmetric scales only). */
export function kvCacheCalibration(args: QuantizationArgs): ActivationCalibration {
  const what = 'kv_cache_scheme';
  if (args.dynamic !== false) throw new UnsupportedActivationError(`${what}: only static kv-cache scales (dynamic: false) are supported by apply`);
  if (args.strategy !== 'tensor' && args.strategy !== 'attn_head') throw new UnsupportedActivationError(`${what}: strategy "${args.strategy}" is not supported by apply; only per-tensor ("tensor") and per-head ("attn_head") k_scale / v_scale are`);
  if (!args.symmetric) throw new UnsupportedActivationError(`${what}: asymmetric kv-cache quantization is not supported (vLLM does not support it either)`);
  if (args.type === 'float' && args.num_bits !== 8) throw new UnsupportedActivationError(`${what}: float kv-cache quantization must be 8-bit (FP8)`);
  if (args.type === 'int' && args.num_bits > 8) throw new UnsupportedActivationError(`${what}: integer kv-cache quantization of ${args.num_bits} bits is not supported (at most 8)`);
  return { kind: args.type === 'float' ? 'fp8' : 'int', observer: observerKind(args, what), bits: args.num_bits, symmetric: true, ...(args.strategy === 'attn_head' ? { perHead: true } : {}) };
}

/** One value as a `[1]` tensor of the model's dtype (how compressed-tensors allocates scales); several as `[n, 1, 1]` (per head). */
function scaleTensor(name: string, value: number | readonly number[], dtype: WeightDtype): ExtraTensor {
  const values = Float32Array.from(typeof value === 'number' ? [value] : value);
  const bytes = dtype === 'BF16' ? bf16Bytes(values) : dtype === 'F16' ? f16Bytes(values) : new Uint8Array(values.buffer);
  return { name, dtype, shape: typeof value === 'number' ? [1] : [values.length, 1, 1], bytes };
}

function scale(c: ActivationCalibration, s: MinMax, dtype: WeightDtype): number {
  return c.kind === 'fp8' ? fp8InputScale(s, dtype) : intInputQParams(s, c.bits, true, dtype).scale;
}

/**
 * The tensors saved for a Linear module `module` whose input was calibrated
 * as `c` with statistics `s`, in a model of dtype `dtype`.
 */
export function inputTensors(module: string, c: ActivationCalibration, s: MinMax, dtype: WeightDtype): ExtraTensor[] {
  if (c.kind === 'nvfp4') return [scaleTensor(`${module}.input_global_scale`, nvfp4GlobalScale(s, dtype), 'F32')];
  if (c.kind === 'int' && !c.symmetric) {
    const q = intInputQParams(s, c.bits, false, dtype);
    return [scaleTensor(`${module}.input_scale`, q.scale, dtype), { name: `${module}.input_zero_point`, dtype: 'I8', shape: [1], bytes: new Uint8Array(Int8Array.of(q.zeroPoint).buffer) }];
  }
  return [scaleTensor(`${module}.input_scale`, scale(c, s, dtype), dtype)];
}

/** `k_scale` and `v_scale` of attention module `attention` from its key and value statistics. */
export function kvCacheTensors(attention: string, c: ActivationCalibration, keys: MinMax | readonly MinMax[], values: MinMax | readonly MinMax[], dtype: WeightDtype): ExtraTensor[] {
  // Per head (`attn_head`): one statistic, and one scale, per KV head.
  const scales = (s: MinMax | readonly MinMax[]): number | number[] => (Array.isArray(s) ? (s as readonly MinMax[]).map((h) => scale(c, h, dtype)) : scale(c, s as MinMax, dtype));
  return [scaleTensor(`${attention}.k_scale`, scales(keys), dtype), scaleTensor(`${attention}.v_scale`, scales(values), dtype)];
}

/**
 * What attention quantization adds to the kv cache's tensors: `q_scale`
 * from the query states, and the FP8 zero points compressed-tensors
 * allocates for the query, key and value (zeros, the scheme being symmetric).
 */
export function attentionTensors(attention: string, c: ActivationCalibration, queries: MinMax, dtype: WeightDtype): ExtraTensor[] {
  const zero = (name: string): ExtraTensor => ({ name: `${attention}.${name}`, dtype: 'F8_E4M3', shape: [1], bytes: new Uint8Array(1) });
  return [scaleTensor(`${attention}.q_scale`, scale(c, queries, dtype), dtype), zero('q_zero_point'), zero('k_zero_point'), zero('v_zero_point')];
}
