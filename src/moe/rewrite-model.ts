/**
 * The MoE stage in one call: resolve every block's calibration rewrite,
 * apply the unpacking, and gather what the planner reports. Each part can
 * also be called alone (`resolveMoeRewrites`, `applyRewrites`, the summaries).
 */
import type { Result } from '../diagnostics.js';
import type { MoeSettings } from '../ir/types.js';
import type { ModuleTree } from '../model/module-tree.js';
import { resolveMoeRewrites, type MoeResolution } from './resolve.js';
import {
  applyRewrites,
  legacyReplaced,
  linearizedModules,
  rewriteCounts,
  rewriteSummaries,
  type RewriteCounts,
  type RewriteSummary,
} from './unpack.js';

/** A model after its calibration rewrites, with the facts a plan reports about them. */
export interface RewrittenModel {
  readonly resolution: MoeResolution;
  /** The tree calibration and matching see: fused experts unpacked (the input tree when none were). */
  readonly tree: ModuleTree;
  /** Plan JSON `moe.rewrites[]`, in tree order. */
  readonly rewrites: readonly RewriteSummary[];
  readonly counts: RewriteCounts;
  /** `[experts module, original class, replacement class]`, as llm-compressor ≥ 0.12 linearizes. */
  readonly linearized: readonly [string, string, string][];
  /** `[block, class, wrapper]`, what llm-compressor 0.11 would have wrapped. */
  readonly legacyReplaced: readonly [string, string, string][];
}

/**
 * Resolves and applies the calibration rewrites of `tree`. Blocks that could
 * not be resolved stay as they are and are reported in the diagnostics; the
 * caller decides whether errors stop the plan.
 */
export function rewriteModel(tree: ModuleTree, settings: MoeSettings): Result<RewrittenModel> {
  const { value: resolution, diagnostics } = resolveMoeRewrites(tree, settings);
  return {
    value: {
      resolution,
      tree: applyRewrites(tree, resolution),
      rewrites: rewriteSummaries(resolution),
      counts: rewriteCounts(resolution),
      linearized: linearizedModules(resolution),
      legacyReplaced: legacyReplaced(resolution),
    },
    diagnostics,
  };
}
