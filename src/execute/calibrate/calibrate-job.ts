/**
 * The calibration stage of `apply`: runs the samples through the model
 * (one layer resident at a time), applies the recipe's expert coverage
 * policy, and returns the job with its calibrated tensors (and, for
 * under-covered experts quantized data-free, an extra config group per
 * scheme naming those modules).
 */
import type { ForwardModel, TokenBatch } from '../forward/executor.js';
import type { WeightDtype } from '../rtn/weight-kernel.js';
import type { ApplyGroup, ApplyJob, ApplyModule, CalibrationSpec, ExtraTensor } from '../types.js';
import { inputCalibration, inputTensors, kvCacheCalibration, kvCacheTensors, attentionTensors } from './activation-qparams.js';
import { calibrate, CUDA_RUN_TOKENS, type CalibrateOptions, type CalibrationResult } from './calibrate.js';
import type { ExpertCoverage } from './coverage.js';
import { expertKey, expertOf, formatExperts, lowCoverage, type LowExpert } from './expert-coverage.js';
import type { MinMax } from './observers.js';

/** Experts below `min_expert_tokens` with `on_low_coverage = error`; nothing has been written. */
export class ExpertCoverageError extends Error {
  constructor(
    readonly experts: readonly LowExpert[],
    message: string,
  ) {
    super(message);
  }
}

/** A module whose input the forward pass never observed; the message is user-facing. */
export class MissingStatisticsError extends Error {}

/** The calibrated job and what calibration saw. */
export interface CalibratedJob {
  /** The input job plus `extraTensors`, and fallback groups where the policy moved experts. */
  readonly job: ApplyJob;
  readonly coverage: ExpertCoverage;
  /** Experts below `min_expert_tokens`. */
  readonly lowExperts: readonly LowExpert[];
  /** Modules quantized data-free because their expert was under-covered (or saw no token). */
  readonly fallbackModules: readonly string[];
}

/** The weight dtype of a model dtype. */
export const DTYPES: Readonly<Record<ForwardModel['config']['dtype'], WeightDtype>> = { bfloat16: 'BF16', float16: 'F16', float32: 'F32' };

/** The message of {@link ExpertCoverageError} for experts `low`. */
export function coverageErrorMessage(low: readonly LowExpert[], spec: CalibrationSpec): string {
  const fixes = spec.calibrateAllExperts ? '' : 'set calibrate_all_experts = true, ';
  return (
    `${low.length} expert${low.length === 1 ? '' : 's'} saw fewer than min_expert_tokens = ${spec.minExpertTokens} calibration tokens: ${formatExperts(low)}. ` +
    `Calibrate on more (or more varied) data, ${fixes}lower min_expert_tokens, or set on_low_coverage to "warning" or "fallback" in the recipe's moe settings.`
  );
}

/** Moves `modules` of every group into a copy of that group without activation quantization, targeting them by name. */
function withFallbackGroups(job: ApplyJob, modules: ReadonlySet<string>): { groups: ApplyGroup[]; modules: ApplyModule[] } {
  const groups = [...job.groups];
  const fallbackOf = new Map<number, number>();
  const targets = new Map<number, string[]>();
  const out = job.modules.map((m) => {
    if (!modules.has(m.name)) return m;
    let g = fallbackOf.get(m.group);
    if (g === undefined) {
      g = groups.length;
      fallbackOf.set(m.group, g);
      targets.set(g, []);
      groups.push(job.groups[m.group]!);
    }
    targets.get(g)!.push(m.name);
    return { name: m.name, group: g };
  });
  for (const [g, names] of targets) {
    const { scheme } = groups[g]!;
    groups[g] = { name: `group_${g}`, scheme: { ...scheme, targets: [...names].sort(), input_activations: null } };
  }
  return { groups, modules: out };
}

/** Where the layer graphs observe query states and each KV head's states (the llama attention builder's users). */
const LLAMA_STYLE_ATTENTION = 'llama-style attention (llama, mistral, qwen2/3, their MoE models, mixtral, olmoe, granitemoe, phimoe)';

/** Each KV head's statistics of `key` (`<key>.h0`, `.h1`, …), for per-head kv-cache scales. */
function headStatistics(stats: ReadonlyMap<string, MinMax>, key: string): MinMax[] {
  const heads: MinMax[] = [];
  for (let h = 0; stats.has(`${key}.h${h}`); h++) heads.push(statistics(stats, `${key}.h${h}`, `${key} head ${h}`));
  if (heads.length === 0) throw new MissingStatisticsError(`${key.replace(/\.(key|value)_states$/, '')}: per-head kv-cache scales (strategy attn_head) observe each KV head of ${LLAMA_STYLE_ATTENTION}, not of this model's`);
  return heads;
}

function statistics(stats: ReadonlyMap<string, MinMax>, key: string, what: string): MinMax {
  const s = stats.get(key);
  if (!s || s.min > s.max) throw new MissingStatisticsError(`${what}: the calibration pass recorded no statistics for it`);
  return s;
}

/**
 * The modules whose inputs `job`'s calibration needs: those with calibrated
 * input activations, and the key and value states of every attention whose
 * KV cache is quantized. Expert modules are named one by one here; the
 * graphs observe experts regardless.
 */
export function observedModules(job: ApplyJob): (module: string) => boolean {
  const names = new Set<string>();
  for (const m of job.modules) if (inputCalibration(job.groups[m.group]!.scheme.input_activations, m.name)) names.add(m.name);
  const perHead = job.kvCacheScheme?.strategy === 'attn_head';
  // Per-head kv-cache statistics come as `<attention>.key_states.h<i>`, one per KV head.
  const headsOf: string[] = [];
  if (job.kvCacheScheme) for (const a of job.calibration!.kvCacheModules) (perHead ? headsOf.push(`${a}.key_states.h`, `${a}.value_states.h`) : names.add(`${a}.key_states`).add(`${a}.value_states`));
  for (const a of job.attentionQuant ?? []) names.add(`${a}.query_states`);
  return (module) => names.has(module) || headsOf.some((p) => module.startsWith(p) && /^\d+$/.test(module.slice(p.length)));
}

/**
 * The modules whose input statistics `job` reads only as `max(|min|, |max|)`:
 * every one but those with asymmetric static integer inputs (FP8, NVFP4's
 * global scale, symmetric integers and the kv cache's scales are symmetric).
 */
export function absmaxModules(job: ApplyJob): (module: string) => boolean {
  const full = new Set<string>();
  for (const m of job.modules) if (inputCalibration(job.groups[m.group]!.scheme.input_activations, m.name)?.symmetric === false) full.add(m.name);
  return (module) => !full.has(module);
}

/**
 * Whether `job` reads statistics of the last batch alone (a memoryless
 * observer, or a calibrated KV cache): joined runs must then keep the last
 * batch in a run of its own (see {@link joinsBatches}).
 */
export function readsLastBatch(job: ApplyJob): boolean {
  return job.kvCacheScheme !== null || job.groups.some((g) => inputCalibration(g.scheme.input_activations, g.name)?.observer === 'last-batch');
}

/**
 * The tokens a calibration run of `job` on `device` joins batches up to
 * (`CalibrateOptions.runTokens`): {@link CUDA_RUN_TOKENS} on CUDA, where a
 * run's host cost is worth sharing; none on the CPU, or where the job reads
 * last-batch statistics of experts that see only their routed tokens. Where
 * last-batch statistics are read the last batch runs alone in joined runs,
 * so only a module it does not reach would see them blurred.
 */
export function joinedRunTokens(job: ApplyJob, device: 'cpu' | 'cuda'): number | undefined {
  return device === 'cuda' && joinsBatches(job) ? CUDA_RUN_TOKENS : undefined;
}

/**
 * Whether `job`'s batches may run joined (merged or looped runs) with the
 * last batch alone: the last-batch statistics are then exact for every
 * module the last batch reaches, which is every module unless experts see
 * only their routed tokens.
 */
export function joinsBatches(job: ApplyJob): boolean {
  return !readsLastBatch(job) || job.calibration!.calibrateAllExperts;
}

/**
 * Calibrates `job` (which must carry a {@link CalibrationSpec}) on
 * `batches`; throws {@link ExpertCoverageError} when the coverage policy
 * stops the run. On CUDA, batches of one length run joined up to
 * {@link CUDA_RUN_TOKENS} tokens (the last batch alone where last-batch
 * statistics are read), unless last-batch statistics are read of experts
 * that see only the tokens routed to them.
 */
export async function calibrateJob(job: ApplyJob, model: ForwardModel, batches: readonly TokenBatch[], options: CalibrateOptions & { readonly expertGroupBytes?: number } = {}): Promise<CalibratedJob> {
  const runTokens = options.runTokens ?? joinedRunTokens(job, model.device);
  // The last batch runs alone only where a memoryless observer or the kv cache reads its statistics.
  const lastBatchAlone = options.lastBatchAlone ?? readsLastBatch(job);
  const result = await calibrate(model, batches, job.calibration!.calibrateAllExperts, options.expertGroupBytes, { ...options, runTokens, lastBatchAlone, observes: observedModules(job), absmax: absmaxModules(job) });
  return completeCalibration(job, result, DTYPES[model.config.dtype]);
}

/**
 * What every calibrated job does with its statistics (from a plain
 * calibration pass or the sequential pipeline): applies the coverage policy
 * and computes the calibrated tensors of weight dtype `dtype`.
 */
export function completeCalibration(job: ApplyJob, result: CalibrationResult, dtype: WeightDtype): CalibratedJob {
  const spec = job.calibration!;
  const low = lowCoverage(result.coverage, spec.minExpertTokens);
  if (low.length > 0 && spec.onLowCoverage === 'error') throw new ExpertCoverageError(low, coverageErrorMessage(low, spec));
  // With "warning" an expert keeps what it saw; one that saw nothing has no statistics and falls back.
  const fallbackExperts = new Set((spec.onLowCoverage === 'fallback' ? low : low.filter((e) => e.tokens === 0)).map(expertKey));
  const fallbackModules = job.modules.filter((m) => {
    const e = expertOf(m.name);
    return e !== null && fallbackExperts.has(e) && inputCalibration(job.groups[m.group]!.scheme.input_activations, m.name) !== null;
  });
  const moved = fallbackModules.length > 0 ? withFallbackGroups(job, new Set(fallbackModules.map((m) => m.name))) : { groups: [...job.groups], modules: [...job.modules] };

  const extra: ExtraTensor[] = [];
  for (const m of moved.modules) {
    const c = inputCalibration(moved.groups[m.group]!.scheme.input_activations, m.name);
    if (!c) continue;
    const stats = c.observer === 'running' ? result.inputs : result.lastBatch;
    extra.push(...inputTensors(m.name, c, statistics(stats, m.name, `${m.name} input`), dtype));
  }
  if (job.kvCacheScheme && spec.kvCacheModules.length > 0) {
    const c = kvCacheCalibration(job.kvCacheScheme);
    const stats = c.observer === 'running' ? result.inputs : result.lastBatch;
    for (const attention of spec.kvCacheModules) {
      const keys = c.perHead ? headStatistics(stats, `${attention}.key_states`) : statistics(stats, `${attention}.key_states`, `${attention} key states`);
      const values = c.perHead ? headStatistics(stats, `${attention}.value_states`) : statistics(stats, `${attention}.value_states`, `${attention} value states`);
      extra.push(...kvCacheTensors(attention, c, keys, values, dtype));
    }
    // Attention quantization adds the query's scale, and zero points for all three (zeros: the scheme is symmetric).
    for (const attention of job.attentionQuant ?? []) {
      if (!stats.has(`${attention}.query_states`)) throw new MissingStatisticsError(`${attention}: attention quantization observes the query states of ${LLAMA_STYLE_ATTENTION}, not of this model's`);
      const queries = statistics(stats, `${attention}.query_states`, `${attention} query states`);
      extra.push(...attentionTensors(attention, c, queries, dtype));
    }
  }
  return {
    job: { ...job, groups: moved.groups, modules: moved.modules, extraTensors: extra },
    coverage: result.coverage,
    lowExperts: low,
    fallbackModules: fallbackModules.map((m) => m.name),
  };
}
