/**
 * What every matching lint reads: the tree, the compiled patterns, and the
 * assignment compressed-tensors would make. Built once, shared by all lints.
 */
import type { Diagnostic } from '../../diagnostics.js';
import type { ModuleTree } from '../../model/module-tree.js';
import { isCachedAttention } from '../attention.js';
import { matchIndex, patternHits, type MatchIndex } from '../match-index.js';
import { assignSchemes, quantizableClasses, type SchemeAssignment, type SchemeGroup } from '../match.js';
import type { CompiledPattern } from '../pattern.js';

/** Inputs and derived facts shared by the lints. */
export interface LintContext {
  readonly tree: ModuleTree;
  readonly index: MatchIndex;
  readonly groups: readonly SchemeGroup[];
  readonly ignore: readonly CompiledPattern[];
  /** Every distinct target (by text), first occurrence kept. */
  readonly targets: readonly CompiledPattern[];
  readonly assignment: SchemeAssignment;
  /**
   * Per module: 1 when, ignore aside, some target matches it and it would
   * receive a scheme (Linear/Embedding subclass, or a cached attention module).
   */
  readonly schemeable: Uint8Array;
}

/** A matching lint: a pure function from the context to diagnostics. */
export type MatchLint = (ctx: LintContext) => Diagnostic[];

/**
 * Builds the lint context for config groups and a global ignore list.
 * `assignment` may pass in the caller's own `assignSchemes` result for the
 * same inputs, so large trees are not matched twice.
 */
export function lintContext(
  tree: ModuleTree,
  groups: readonly SchemeGroup[],
  ignore: readonly CompiledPattern[],
  assignment: SchemeAssignment = assignSchemes(tree, groups, ignore),
): LintContext {
  const index = matchIndex(tree);
  const targets = assignment.targets.map((t) => t.pattern);
  const quantizable = quantizableClasses(tree);
  const schemeable = new Uint8Array(tree.names.length);
  for (const t of targets) {
    const bits = patternHits(index, t).bits;
    for (let i = 0; i < bits.length; i++) {
      if (bits[i] !== 0 && schemeable[i] === 0) {
        schemeable[i] = quantizable[tree.classIds[i]!] === 1 || isCachedAttention(tree, i) ? 1 : 0;
      }
    }
  }
  return { tree, index, groups, ignore, targets, assignment, schemeable };
}

/** Module indices a pattern hits, in order. */
export function hitModules(ctx: LintContext, pattern: CompiledPattern): number[] {
  const bits = patternHits(ctx.index, pattern).bits;
  const out: number[] = [];
  for (let i = 0; i < bits.length; i++) if (bits[i] !== 0) out.push(i);
  return out;
}

/** Every pattern the lints look at: targets first, then ignore entries, with their role. */
export function allPatterns(ctx: LintContext): { pattern: CompiledPattern; role: 'target' | 'ignore' }[] {
  return [...ctx.targets.map((pattern) => ({ pattern, role: 'target' as const })), ...ctx.ignore.map((pattern) => ({ pattern, role: 'ignore' as const }))];
}
