/**
 * Brace patterns for a plan step's modules, fast on fine-grained MoE models.
 *
 * When every expert Linear of an unpacked experts module is in the list, the
 * container stands in for all of them (one name instead of `E × 3`), and
 * its brace sets are put back into the patterns afterwards. The patterns are
 * the ones `compressNames` gives for the full list: a complete container is
 * exactly the product `experts.{0..E-1}.{up,gate,down}_proj` that
 * `compressNames` would have merged its names into first.
 */
import { compressNames } from '../match/compress-names.js';
import type { ModuleTree } from '../model/module-tree.js';
import type { MoeResolution } from '../moe/resolve.js';

/** Placeholder components: they hold no dot, so they survive compression as one column each. */
const EXPERTS_MARK = '\u0001';
const LINEARS_MARK = '\u0002';

/** Compresses `modules` (indices into `tree`, in tree order) into brace patterns. */
export function compressModules(tree: ModuleTree, modules: readonly number[], moe: MoeResolution): string[] {
  const containers = unpackedContainers(tree, moe);
  if (containers.size === 0) return compressNames(modules.map((m) => tree.names[m]!)).map((g) => g.pattern);

  const seen = new Map<number, number>();
  const linearSets = new Map<number, string[]>();
  for (const m of modules) {
    const g = grandparent(tree, m);
    if (!containers.has(g)) continue;
    seen.set(g, (seen.get(g) ?? 0) + 1);
    const locals = linearSets.get(g) ?? [];
    const local = tree.names[m]!.slice(tree.names[m]!.lastIndexOf('.') + 1);
    if (!locals.includes(local)) locals.push(local);
    linearSets.set(g, locals);
  }
  const complete = new Set([...seen].filter(([g, n]) => n === containers.get(g)!.linears && n > 0).map(([g]) => g));

  const setIds = new Map<string, number>();
  const sets: string[][] = [];
  const names: string[] = [];
  const emitted = new Set<number>();
  for (const m of modules) {
    const g = grandparent(tree, m);
    if (!complete.has(g)) {
      names.push(tree.names[m]!);
      continue;
    }
    if (emitted.has(g)) continue;
    emitted.add(g);
    const locals = linearSets.get(g)!;
    const key = locals.join(',');
    let id = setIds.get(key);
    if (id === undefined) {
      id = sets.length;
      setIds.set(key, id);
      sets.push(locals);
    }
    names.push(`${tree.names[g]}.${EXPERTS_MARK}${containers.get(g)!.experts}.${LINEARS_MARK}${id}`);
  }
  return compressNames(names).map((group) =>
    group.pattern
      .replace(new RegExp(`${EXPERTS_MARK}(\\d+)`, 'g'), (_, e: string) => expertRange(Number(e)))
      .replace(new RegExp(`${LINEARS_MARK}(\\d+)`, 'g'), (_, id: string) => linearSet(sets[Number(id)]!)),
  );
}

/** Unpacked experts containers of the rewritten tree: experts count and Linear count. */
function unpackedContainers(tree: ModuleTree, moe: MoeResolution): Map<number, { experts: number; linears: number }> {
  const wanted = new Map<string, { experts: number; linears: number }>();
  for (const r of moe.rewrites) {
    if (r.rewrite !== 'unpack-fused-experts' || !r.expert) continue;
    wanted.set(r.experts.name, { experts: r.experts.count, linears: r.experts.count * r.expert.linears.length });
  }
  const out = new Map<number, { experts: number; linears: number }>();
  if (wanted.size === 0) return out;
  for (let i = 0; i < tree.names.length; i++) {
    const w = wanted.get(tree.names[i]!);
    if (w) out.set(i, w);
  }
  return out;
}

function grandparent(tree: ModuleTree, m: number): number {
  const p = tree.parents[m]!;
  return p < 0 ? -1 : tree.parents[p]!;
}

/** `{0..E-1}` as compressNames renders a complete integer range. */
function expertRange(experts: number): string {
  if (experts === 1) return '0';
  return experts === 2 ? '{0,1}' : `{0..${experts - 1}}`;
}

/** The Linear names of one expert as compressNames renders their set (`{up,gate,down}_proj`). */
function linearSet(locals: readonly string[]): string {
  return compressNames(locals.map((l) => `x.${l}`))[0]!.pattern.slice(2);
}
