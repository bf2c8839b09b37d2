/** Runs one matching lint on a tree and renders its diagnostics compactly. */
import type { Diagnostic } from '../../../src/diagnostics.js';
import type { ModuleTree } from '../../../src/model/module-tree.js';
import { lintContext, type MatchLint } from '../../../src/match/lints/context.js';
import type { SchemeGroup } from '../../../src/match/match.js';
import { group, patterns } from '../tiny-tree.js';

/** `severity code: message` per diagnostic, notes indented below. */
export function render(ds: readonly Diagnostic[]): string[] {
  return ds.map((d) => [`${d.severity} ${d.code}: ${d.message}`, ...(d.notes ?? []).map((n) => `  note: ${n.message}`)].join('\n'));
}

/** Runs `lint` for one group of `targets` (or explicit groups) and a global `ignore` list. */
export function runLint(lint: MatchLint, tree: ModuleTree, targets: string[] | SchemeGroup[], ignore: string[] = []): string[] {
  const groups = typeof targets[0] === 'string' || targets.length === 0 ? [group('group_0', targets as string[])] : (targets as SchemeGroup[]);
  return render(lint(lintContext(tree, groups, patterns(ignore))));
}
