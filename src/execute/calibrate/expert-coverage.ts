/**
 * The expert coverage policy: which experts saw too few calibration tokens,
 * which modules belong to them, and how they are named in messages.
 */
import type { ExpertCoverage } from './coverage.js';

/** An expert below the recipe's `min_expert_tokens`. */
export interface LowExpert {
  readonly layer: number;
  readonly expert: number;
  /** Tokens its observers saw. */
  readonly tokens: number;
}

/** Experts of `coverage` that saw fewer than `minTokens` tokens, by layer then expert. */
export function lowCoverage(coverage: ExpertCoverage, minTokens: number): LowExpert[] {
  return coverage.layers.flatMap((l) => l.seen.flatMap((tokens, expert) => (tokens < minTokens ? [{ layer: l.layer, expert, tokens }] : [])));
}

const EXPERT_MODULE = /(?:^|\.)layers\.(\d+)\.(?:.*\.)?experts\.(\d+)\./;

/** `layer/expert` of a routed expert's Linear module (`…layers.1.mlp.experts.3.gate_proj`), or null (shared experts included). */
export function expertOf(module: string): string | null {
  const m = EXPERT_MODULE.exec(module);
  return m ? `${m[1]}/${m[2]}` : null;
}

/** The key {@link expertOf} gives for `e`. */
export function expertKey(e: LowExpert): string {
  return `${e.layer}/${e.expert}`;
}

/** `layer 1 expert 3 (0 tokens), …`, the first `limit` of them and a count of the rest. */
export function formatExperts(experts: readonly LowExpert[], limit = 8): string {
  const shown = experts.slice(0, limit).map((e) => `layer ${e.layer} expert ${e.expert} (${e.tokens} token${e.tokens === 1 ? '' : 's'})`);
  if (experts.length > limit) shown.push(`and ${experts.length - limit} more`);
  return shown.join(', ');
}

/** The summary's coverage line: the least-covered expert and how many fell short. */
export function coverageSummary(coverage: ExpertCoverage, minTokens: number): string {
  if (coverage.layers.length === 0) return `dense model, ${coverage.tokens} tokens (no experts)`;
  let least = { layer: 0, expert: 0, tokens: Infinity };
  for (const l of coverage.layers) l.seen.forEach((n, e) => n < least.tokens && (least = { layer: l.layer, expert: e, tokens: n }));
  const experts = coverage.layers.reduce((n, l) => n + l.seen.length, 0);
  const low = lowCoverage(coverage, minTokens).length;
  const mode = coverage.calibrateAllExperts ? 'every expert sees every token' : 'experts see routed tokens';
  return `${experts} experts in ${coverage.layers.length} MoE layers (${mode}); least: layer ${least.layer} expert ${least.expert}, ${least.tokens} of ${coverage.tokens} tokens; ${low} below min_expert_tokens ${minTokens}`;
}
