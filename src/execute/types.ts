/**
 * The executor's input: a plain description of what to write, produced by
 * the planner (or by hand in tests). It names modules in the saved
 * checkpoint's terms: per-expert Linear names after unpacking fused experts.
 */
import type { QuantizationArgs, QuantizationScheme } from '../ir/types.js';
import type { LowCoveragePolicy } from '../parse/document.js';
import type { SafetensorsDtype } from './dtypes.js';
import type { Device } from './runtime.js';
import type { DeviceSlot } from './device-list.js';
import type { WeightQparams } from './gptq/weight-qparams.js';
import type { SmoothMapping } from '../match/smoothquant-mappings.js';
import type { PartSpec } from './parts.js';
import type { AwqMapping } from '../match/awq-mappings.js';

/** One config group as written to `quantization_config.config_groups`. */
export interface ApplyGroup {
  /** `group_0`, `group_1`, … in first-use order. */
  readonly name: string;
  /** The scheme (its `targets` are written as given). */
  readonly scheme: QuantizationScheme;
}

/** One Linear module to quantize. */
export interface ApplyModule {
  /** Module name in the saved checkpoint, e.g. `model.layers.1.mlp.experts.3.gate_proj`. */
  readonly name: string;
  /** Index into {@link ApplyJob.groups}. */
  readonly group: number;
}

/**
 * A fused 3-D experts parameter in the input checkpoint and the per-expert
 * Linear weights it unpacks into (transformers 5 layout: `gate_up_proj`
 * `[E, 2I, H]`, `down_proj` `[E, H, I]`, or transposed).
 */
export interface FusedExpertsParam {
  /** Tensor name in the input checkpoint, e.g. `model.layers.1.mlp.experts.gate_up_proj`. */
  readonly tensor: string;
  /** Experts module prefix of the unpacked names, e.g. `model.layers.1.mlp.experts`. */
  readonly expertsModule: string;
  /** Whether each expert slice is `[in, out]` (transposed) rather than `[out, in]` in memory. */
  readonly transposed: boolean;
  /**
   * The parameter's in-memory shape `[E, d1, d2]`. A checkpoint storing it
   * as `[E, d2, d1]` instead is read transposed, as transformers' `Transpose(1, 2,
   * check_dims=True)` conversion does (Qwen3-VL-MoE as published).
   */
  readonly shape?: readonly number[];
  /** Projections in slice order along the output dimension, e.g. `['gate_proj', 'up_proj']`. */
  readonly projections: readonly string[];
  /** The fused bias `[E, out]` sliced the same way (gpt-oss's `gate_up_proj_bias`), written per expert as `<projection>.bias`. */
  readonly bias?: string;
}

/**
 * What a calibrated job must measure before its weight pass: present when a
 * config group has static (or NVFP4 "local") input activations or the job
 * has a kv-cache scheme.
 */
export interface CalibrationSpec {
  /** llm-compressor's `moe_calibrate_all_experts`: every expert observes every token. */
  readonly calibrateAllExperts: boolean;
  /** Fewest tokens an expert's observers must see. */
  readonly minExpertTokens: number;
  readonly onLowCoverage: LowCoveragePolicy;
  /** Attention modules that receive `k_scale` / `v_scale` (empty without a kv-cache scheme). */
  readonly kvCacheModules: readonly string[];
}

/** A tensor written as given (calibrated scales), next to the quantized weights. */
export interface ExtraTensor {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

/** GPTQModifier's settings for a job (see `execute/gptq`). */
export interface GptqSpec {
  /** Columns per lazy batch update (`block_size`). */
  readonly blockSize: number;
  /** Dampening as a fraction of the mean Hessian diagonal (`dampening_frac`). */
  readonly dampeningFrac: number;
  /** Modules GPTQ quantizes (the others of the job are rounded to nearest). */
  readonly modules: readonly string[];
}

/**
 * A weight an algorithm has already quantized (GPTQ): its dequantized values
 * in the model dtype, exact multiples of the scales observed on the original
 * weight, so the weight pass recovers the integer codes from them.
 */
export interface SolvedWeight {
  /** `[out, in]` row-major bytes of `dtype`. */
  readonly bytes: Uint8Array;
  readonly dtype: 'BF16' | 'F16' | 'F32';
  /** Group activation ordering: `weight_g_idx`, the scale group of each column. */
  readonly gIdx: Int32Array | null;
  /** Group activation ordering: the qparams in permuted grouping (written as they are). */
  readonly qparams: WeightQparams | null;
}

/** A quantization modifier's own calibration pass in a GPTQ job (see `ApplyJob.ownPasses`). */
export interface StatisticsPass {
  /** The modifier comes after the GPTQModifier: its pass runs on the model GPTQ quantized. */
  readonly afterGptq: boolean;
  /** Modules whose static input scales this pass observes. */
  readonly modules: readonly string[];
  /** Whether it observes the kv cache's scales. */
  readonly kvCache: boolean;
}

/** SmoothQuantModifier's settings for a job (see `execute/smoothquant`). */
export interface SmoothSpec {
  /** `smoothing_strength` (α). */
  readonly strength: number;
  /** Resolved mappings, in execution order. */
  readonly mappings: readonly SmoothMapping[];
  /** The modifier comes after the GPTQModifier in the recipe: it smooths the model GPTQ has quantized. */
  readonly afterGptq?: boolean;
}

/** AWQModifier's settings for a job (see `execute/awq`). */
export interface AwqSpec {
  /** `duo_scaling`. */
  readonly duoScaling: boolean | 'both';
  /** `n_grid`. */
  readonly nGrid: number;
  /** Resolved mappings, in llm-compressor's order. */
  readonly mappings: readonly AwqMapping[];
  /** The modifier comes after the GPTQModifier in the recipe: it smooths the model GPTQ has quantized. */
  readonly afterGptq?: boolean;
}

/** Everything `apply` needs. */
export interface ApplyJob {
  /** Input model folder (never modified). */
  readonly modelDir: string;
  /** Output folder; must not exist yet. */
  readonly outDir: string;
  readonly device: Device;
  /**
   * Devices the data-free weight pass spreads its tensors over (one runtime
   * each; see `device-list.ts`); absent: `device` alone. Results do not depend on it.
   */
  readonly devices?: readonly DeviceSlot[];
  readonly groups: readonly ApplyGroup[];
  readonly modules: readonly ApplyModule[];
  /** Fused experts tensors to unpack into per-expert Linear weights. */
  readonly fusedExperts: readonly FusedExpertsParam[];
  /** Module names written verbatim to `quantization_config.ignore`. */
  readonly ignore: readonly string[];
  readonly kvCacheScheme: QuantizationArgs | null;
  /** Set when the job needs calibration data (see {@link CalibrationSpec}). */
  readonly calibration?: CalibrationSpec;
  /** Set when a SmoothQuantModifier runs (before the quantization modifiers, or after GPTQ: see `afterGptq`). */
  readonly smoothquant?: SmoothSpec;
  /** Set when an AWQModifier runs (before the quantization modifiers, or after GPTQ: see `afterGptq`). */
  readonly awq?: AwqSpec;
  /**
   * Weights a transform changed, in their stored dtype: Linear weights by
   * module (quantized from these bytes instead of the checkpoint's) and
   * other tensors by name (written instead of the checkpoint's).
   */
  readonly changedWeights?: { readonly linears: ReadonlyMap<string, Uint8Array>; readonly tensors: ReadonlyMap<string, Uint8Array> };
  /** Weights of zero-centred norms, written as llm-compressor's offset-norm round trip leaves them (see offset-norms.ts). */
  readonly offsetNorms?: readonly string[];
  /**
   * Attention modules whose query states are quantized too (compressed-tensors'
   * attention quantization: a scheme on the attention class with input
   * activations only): each gets `q_scale` next to the kv cache's scales, and
   * zero points for all three.
   */
  readonly attentionQuant?: readonly string[];
  /** Set when a GPTQModifier runs. */
  readonly gptq?: GptqSpec;
  /**
   * With GPTQ: the static statistics other quantization modifiers observe in
   * passes of their own, before or after GPTQ's, as llm-compressor's
   * independent pipeline runs each modifier (GPTQ's pass observes only its
   * own modules').
   */
  readonly ownPasses?: readonly StatisticsPass[];
  /** Weights quantized by an algorithm (filled in by GPTQ), by module. */
  readonly solvedWeights?: ReadonlyMap<string, SolvedWeight>;
  /** Calibrated tensors to write (filled in by calibration). */
  readonly extraTensors?: readonly ExtraTensor[];
  /** Text saved as `recipe.yaml`. */
  readonly recipeYaml: string;
  /** Largest shard in bytes (llm-compressor's default is 20 GB). */
  readonly maxShardBytes?: number;
  /** Write only this part of the checkpoint (`apply --shard I/N`; see `execute/parts.ts`); data-free jobs only. */
  readonly part?: PartSpec;
  /** Largest weight slice per graph run (see `GraphRuntime`); a tuning knob, results do not depend on it. */
  readonly chunkElements?: number | null;
  /** Widen bf16 weights inside the graphs (see `GraphRuntime`); a tuning knob, results do not depend on it. */
  readonly decodeBf16InGraph?: boolean;
  /** Encode FP8 bytes inside the graphs (see `GraphRuntime`); a tuning knob, results do not depend on it. */
  readonly encodeFp8InGraph?: boolean;
  /** Round-to-nearest in loops rather than graphs on the CPU (see `GraphRuntime`); a tuning knob, results do not depend on it. */
  readonly cpuLoops?: boolean;
  /** Worker threads quantizing in the CPU loops (default: one per core from two cores up; 0: this thread); results do not depend on it. */
  readonly cpuWorkers?: number;
  /**
   * Where the weight pass quantizes when `device` is CUDA (`apply
   * --weights-on`): 'cpu', in the CPU loops (worker threads); 'device', in
   * graphs on the GPUs; 'auto' (default), the CPU loops where worker threads
   * run (built code), else the GPUs. Kernels the loops lack and GPTQ's group
   * activation order stay on the GPUs. The bytes written do not depend on it.
   */
  readonly weightsOn?: 'auto' | 'cpu' | 'device';
}

/** Progress events, in order: one `start`, then per-module `module`, then `done`. */
export type ApplyEvent =
  | { readonly kind: 'start'; readonly modules: number; readonly bytesIn: number }
  | { readonly kind: 'module'; readonly index: number; readonly total: number; readonly name: string; readonly bytesRead: number }
  | { readonly kind: 'write'; readonly file: string }
  | { readonly kind: 'done'; readonly summary: ApplySummary };

/** What `apply` did. */
export interface ApplySummary {
  readonly seconds: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly ratio: number;
  readonly quantized: number;
  readonly ignored: number;
  readonly outDir: string;
  /** Bytes of quantized weights read per second of weight processing, in GB/s. */
  readonly weightGBps: number;
  /** With several devices (`ApplyJob.devices`) or CPU worker threads: how many weights (fused NVFP4 groups counting once) each quantized, in order. */
  readonly unitsPerRuntime?: readonly number[];
  /** On CUDA, where the CPU loops quantized some weights (`ApplyJob.weightsOn`): how many CPU threads did. */
  readonly cpuThreads?: number;
  /** With several devices: whether each quantized from a worker thread of its own (built code), rather than all from the main thread in turn. */
  readonly deviceThreads?: boolean;
}
