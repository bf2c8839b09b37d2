/**
 * The matching lints: warnings compressed-tensors does not give, each a pure
 * function of the tree and the recipe's patterns.
 */
import type { Diagnostic } from '../../diagnostics.js';
import type { ModuleTree } from '../../model/module-tree.js';
import type { SchemeAssignment, SchemeGroup } from '../match.js';
import type { CompiledPattern } from '../pattern.js';
import { lintContext, type MatchLint } from './context.js';
import { ignoreWithoutEffect } from './ignore-without-effect.js';
import { nameUnderOtherPrefixLint } from './name-under-other-prefix.js';
import { numberPrefix } from './number-prefix.js';
import { overlappingGroups } from './overlapping-groups.js';
import { plainLooksLikeRegex } from './plain-looks-like-regex.js';
import { prefixWithoutBoundary } from './prefix-without-boundary.js';
import { targetWithoutScheme } from './target-without-scheme.js';
import { unescapedDot } from './unescaped-dot.js';
import { unmatchedPatterns } from './unmatched-pattern.js';

/** Every matching lint, in the order their diagnostics are reported. */
export const MATCH_LINTS: readonly MatchLint[] = [
  unmatchedPatterns,
  plainLooksLikeRegex,
  nameUnderOtherPrefixLint,
  ignoreWithoutEffect,
  targetWithoutScheme,
  unescapedDot,
  prefixWithoutBoundary,
  numberPrefix,
  overlappingGroups,
];

/** Runs every matching lint over one quantization config (its groups and global ignore list). */
export function runMatchLints(
  tree: ModuleTree,
  groups: readonly SchemeGroup[],
  ignore: readonly CompiledPattern[],
  assignment?: SchemeAssignment,
): Diagnostic[] {
  const ctx = lintContext(tree, groups, ignore, assignment);
  return MATCH_LINTS.flatMap((lint) => lint(ctx));
}
