/**
 * The executor's input: a plain description of what to write, produced by
 * the planner (or by hand in tests). It names modules in the saved
 * checkpoint's terms: per-expert Linear names after unpacking fused experts.
 */
import type { QuantizationArgs, QuantizationScheme } from '../ir/types.js';
import type { Device } from './runtime.js';

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
  /** Whether each expert slice is stored `[in, out]` (transposed) rather than `[out, in]`. */
  readonly transposed: boolean;
  /** Projections in slice order along the output dimension, e.g. `['gate_proj', 'up_proj']`. */
  readonly projections: readonly string[];
}

/** Everything `apply` needs. */
export interface ApplyJob {
  /** Input model folder (never modified). */
  readonly modelDir: string;
  /** Output folder; must not exist yet. */
  readonly outDir: string;
  readonly device: Device;
  readonly groups: readonly ApplyGroup[];
  readonly modules: readonly ApplyModule[];
  /** Fused experts tensors to unpack into per-expert Linear weights. */
  readonly fusedExperts: readonly FusedExpertsParam[];
  /** Module names written verbatim to `quantization_config.ignore`. */
  readonly ignore: readonly string[];
  readonly kvCacheScheme: QuantizationArgs | null;
  /** Text saved as `recipe.yaml`. */
  readonly recipeYaml: string;
  /** Largest shard in bytes (llm-compressor's default is 20 GB). */
  readonly maxShardBytes?: number;
  /** Largest weight slice per graph run (see `GraphRuntime`); a tuning knob, results do not depend on it. */
  readonly chunkElements?: number | null;
  /** Widen bf16 weights inside the graphs (see `GraphRuntime`); a tuning knob, results do not depend on it. */
  readonly decodeBf16InGraph?: boolean;
  /** Encode FP8 bytes inside the graphs (see `GraphRuntime`); a tuning knob, results do not depend on it. */
  readonly encodeFp8InGraph?: boolean;
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
}
