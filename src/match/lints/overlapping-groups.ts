/**
 * Two config groups claiming the same module. compressed-tensors resolves it
 * by target precedence (exact names, then `re:` patterns alphabetically,
 * then class names), not by group order; vLLM takes the first matching
 * target in config order. Also: one target string listed in two groups,
 * where the later group silently takes it over.
 */
import { warning, type Diagnostic, type DiagnosticNote } from '../../diagnostics.js';
import { summarizeNames } from '../compress-names.js';
import { BY_CLASS, BY_NAME, patternHits } from '../match-index.js';
import type { CompiledPattern } from '../pattern.js';
import type { LintContext } from './context.js';

/** Warns about modules matched by several config groups, and about targets shared between groups. */
export function overlappingGroups(ctx: LintContext): Diagnostic[] {
  const out = duplicateTargets(ctx);
  if (ctx.groups.length < 2) return out;
  const { assignment, tree } = ctx;
  const ownerBits = assignment.targets.map((t) => patternHits(ctx.index, t.pattern).bits);
  const buckets = new Map<string, { modules: number[]; claimants: number[]; ct: number; vllm: number; ctTarget: number; vllmTarget: number }>();
  // A group claims a module through targets it owns: a string listed again
  // in a later group belongs to that group only (reported separately).
  const owned = new Map(assignment.targets.map((t) => [t.pattern.text, t.group]));
  const groupBits = ctx.groups.map((g, gi) => g.targets.filter((t) => owned.get(t.text) === gi).map((t) => patternHits(ctx.index, t).bits));
  for (const list of [assignment.quantized, assignment.attention]) {
    list.modules.forEach((m, k) => {
      const claimants = groupBits.flatMap((bits, gi) => (bits.some((b) => b[m] !== 0) ? [gi] : []));
      if (claimants.length < 2) return;
      const vllmTarget = firstInConfigOrder(ownerBits, m);
      const vllm = assignment.targets[vllmTarget]!.group;
      const ct = list.groups[k]!;
      const ctTarget = list.targets[k]!;
      const key = `${claimants.join(',')}|${ct}|${vllm}|${ctTarget}|${vllmTarget}`;
      const b = buckets.get(key);
      if (b) b.modules.push(m);
      else buckets.set(key, { modules: [m], claimants, ct, vllm, ctTarget, vllmTarget });
    });
  }
  for (const b of buckets.values()) {
    const names = summarizeNames(b.modules.map((m) => tree.names[m]!));
    const groupList = b.claimants.map((g) => `"${ctx.groups[g]!.name}"`).join(' and ');
    const winner = assignment.targets[b.ctTarget]!.pattern;
    const notes: DiagnosticNote[] = b.claimants
      .filter((g) => g !== b.ct)
      .map((g) => {
        const t = ctx.groups[g]!.targets.find((p) => owned.get(p.text) === g && patternHits(ctx.index, p).bits[b.modules[0]!] !== 0)!;
        return note(`also matched by "${t.text}" in "${ctx.groups[g]!.name}"`, t);
      });
    out.push(
      warning(
        'module-claimed-by-several-groups',
        `${b.modules.length} module${b.modules.length === 1 ? ' is' : 's are'} matched by config groups ${groupList} (${names}); compressed-tensors gives ${b.modules.length === 1 ? 'it' : 'them'} "${ctx.groups[b.ct]!.name}"'s scheme because "${winner.text}" takes precedence (exact names, then re: patterns in alphabetical order, then class names).`,
        winner.origin,
        notes,
      ),
    );
    if (b.vllm !== b.ct) {
      const first = assignment.targets[b.vllmTarget]!.pattern;
      out.push(
        warning(
          'scheme-winner-differs-in-vllm',
          `vLLM takes the first matching target in config order, so it reads ${b.modules.length} module${b.modules.length === 1 ? '' : 's'} (${names}) with "${ctx.groups[b.vllm]!.name}"'s scheme ("${first.text}") while llm-compressor quantizes them with "${ctx.groups[b.ct]!.name}"'s ("${winner.text}").`,
          first.origin,
          [note(`compressed-tensors picks "${winner.text}"`, winner)],
        ),
      );
    }
  }
  return out;
}

/** vLLM's choice: the first target in `target_to_scheme` order matching by name, else by class. */
function firstInConfigOrder(bits: readonly Uint8Array[], m: number): number {
  const byName = bits.findIndex((b) => (b[m]! & BY_NAME) !== 0);
  return byName >= 0 ? byName : bits.findIndex((b) => (b[m]! & BY_CLASS) !== 0);
}

function note(message: string, p: CompiledPattern): DiagnosticNote {
  return p.origin ? { message, span: p.origin } : { message };
}

/** One target string in several groups: c-t keeps only the last group's scheme for it. */
function duplicateTargets(ctx: LintContext): Diagnostic[] {
  const seen = new Map<string, { group: number; pattern: CompiledPattern }[]>();
  ctx.groups.forEach((g, gi) => {
    for (const p of g.targets) seen.set(p.text, [...(seen.get(p.text) ?? []), { group: gi, pattern: p }]);
  });
  const out: Diagnostic[] = [];
  for (const [text, uses] of seen) {
    const groups = [...new Set(uses.map((u) => u.group))];
    if (groups.length < 2) continue;
    const last = uses[uses.length - 1]!;
    out.push(
      warning(
        'target-in-several-groups',
        `The target "${text}" is listed in config groups ${groups.map((g) => `"${ctx.groups[g]!.name}"`).join(' and ')}; compressed-tensors keeps one scheme per target string, the last group's ("${ctx.groups[last.group]!.name}"), so the earlier listing has no effect.`,
        uses[0]!.pattern.origin,
        [note(`the listing that wins, in "${ctx.groups[last.group]!.name}"`, last.pattern)],
      ),
    );
  }
  return out;
}
