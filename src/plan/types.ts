/**
 * The plan: what a recipe will do to one model, step by step, computed
 * before any weight moves. The JSON form (`formatVersion`) is the contract
 * for tools and for `apply`; every human rendering is derived from it.
 */
import type { QuantizationScheme } from '../ir/types.js';
import type { LowCoveragePolicy } from '../parse/document.js';

/** Bumped on any incompatible change to the plan JSON. */
export const PLAN_FORMAT_VERSION = 1;

/** A source location in the plan JSON (display only: explains why). */
export interface PlanSpan {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** Why a module got its treatment: the pattern and where it was written. */
export interface PlanReason {
  readonly pattern: string;
  readonly span?: PlanSpan;
}

/** One MoE block rewritten for calibration. */
export interface PlanRewrite {
  /** The MoE block module, e.g. `model.layers.1.mlp`. */
  readonly module: string;
  /** Its class, e.g. `Glm4MoeLiteMoE`. */
  readonly class: string;
  /** What quantc does, e.g. `unpack-fused-experts` or `route-all-tokens`. */
  readonly rewrite: string;
  /** Number of routed experts in the block. */
  readonly experts: number;
  /** The experts container that is replaced, when experts are unpacked. */
  readonly expertsModule?: string;
  /** Whether a declaration in the recipe (not the built-in catalog) supplied the rewrite. */
  readonly declared: boolean;
}

/** One module that receives a quantization scheme. */
export interface PlanQuantize {
  readonly module: string;
  /** Key into `Plan.schemes`. */
  readonly scheme: string;
}

/** One module that a target matched but `ignore` removed. */
export interface PlanIgnored {
  readonly module: string;
  readonly pattern: string;
}

/** One diagnostic as the plan records it. */
export interface PlanDiagnostic {
  readonly code: string;
  readonly severity: 'error' | 'warning' | 'info';
  readonly message: string;
  readonly span?: PlanSpan;
}

/** The kinds of steps, in lifecycle order. */
export type StepAction = 'load' | 'rewrite' | 'attach' | 'transform' | 'calibrate' | 'quantize' | 'restore' | 'save';

/** Size estimates attached to a step. */
export interface StepEstimate {
  readonly params?: number;
  readonly bytesBefore?: number;
  readonly bytesAfter?: number;
  /** Peak accelerator memory for one calibration subgraph, in bytes. */
  readonly calibrationBytes?: number;
  /**
   * The hidden states of every calibration sample held between two
   * subgraphs (float32, the assumed samples × sequence length), in bytes:
   * host memory, where the sequential pipeline keeps them.
   */
  readonly hiddenStatesBytes?: number;
}

/** One plan step. `modules` is a compressed name list (`a.{0..3}.b`). */
export interface PlanStep {
  readonly index: number;
  readonly action: StepAction;
  readonly title: string;
  readonly modifier?: number;
  readonly modules?: readonly string[];
  readonly count?: number;
  readonly details?: Readonly<Record<string, unknown>>;
  readonly reason?: PlanReason;
  readonly estimate?: StepEstimate;
}

/** A resolved scheme as the plan names it. */
export interface PlanScheme extends QuantizationScheme {
  readonly preset: string | null;
  /** compressed-tensors format this scheme is saved in. */
  readonly savedFormat: string;
  /** Index of the modifier that attached it. */
  readonly modifier: number;
  readonly group: string;
}

/** The whole plan. */
export interface Plan {
  readonly formatVersion: number;
  readonly quantc: string;
  readonly recipe: {
    readonly path: string;
    readonly name: string | null;
    readonly version: string | null;
    readonly hash: string;
  };
  readonly model: {
    readonly id: string;
    readonly modelType: string | null;
    /** How the model was given: `folder`, `config`, `module-tree-json` or `hub` (a bundled config). */
    readonly source: string;
    readonly configHash: string;
    readonly modules: number;
    readonly modulesAfterRewrites: number;
  };
  readonly moe: {
    readonly calibrateAllExperts: boolean;
    readonly rewrites: readonly PlanRewrite[];
    /** The expert coverage policy; present only when the model has MoE rewrites and a modifier calibrates. */
    readonly coverage?: PlanExpertCoverage;
  };
  readonly pipeline: {
    /** llm-compressor's default `independent` pipeline: one inferred pipeline per modifier. */
    readonly perModifier: readonly { readonly modifier: number; readonly type: string; readonly pipeline: 'datafree' | 'sequential' }[];
    readonly sequentialTargets: readonly string[];
    readonly subgraphs: number;
  };
  readonly schemes: Readonly<Record<string, PlanScheme>>;
  readonly quantize: readonly PlanQuantize[];
  readonly ignored: readonly PlanIgnored[];
  readonly steps: readonly PlanStep[];
  readonly diagnostics: readonly PlanDiagnostic[];
  readonly summary: PlanSummary;
}

/**
 * What calibration does with an expert whose observers saw fewer than
 * `minExpertTokens` tokens (the recipe's `min_expert_tokens` and
 * `on_low_coverage`). Optional in the plan JSON, so formatVersion stays 1.
 */
export interface PlanExpertCoverage {
  readonly minExpertTokens: number;
  readonly onLowCoverage: LowCoveragePolicy;
}

/** Headline numbers. */
export interface PlanSummary {
  readonly rewrites: number;
  readonly quantized: number;
  readonly ignored: number;
  /** Matched by a target but not quantizable (not Linear/Embedding/attention). */
  readonly matchedNotQuantizable: number;
  readonly errors: number;
  readonly warnings: number;
  readonly paramsBefore: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly compressionRatio: number;
  readonly requiresCalibrationData: boolean;
}
