/**
 * Turns a set of qualified module names into a few brace patterns, e.g.
 * 8,832 expert projections into `model.layers.{1..46}.mlp.experts.{0..63}.{gate,up,down}_proj`.
 * Names are split on dots; names that differ in exactly one component are
 * merged into a set for that component, innermost component first, until
 * nothing merges. Each group is therefore an exact Cartesian product of its
 * sets: expanding a pattern gives back exactly its members.
 */

/** One compressed group of names. */
export interface NameGroup {
  /** Brace pattern: `{1..46}` for integer ranges, `{a,b}` for alternatives, shared affixes factored out. */
  readonly pattern: string;
  /** How many names the pattern stands for. */
  readonly count: number;
  /** Position of the group's first name in the input: groups are returned in this order. */
  readonly first: number;
  /** The key the caller gave its names (never merged across keys). */
  readonly key: string;
}

interface Row {
  /** Per component: the set of values (first-seen order). */
  readonly cols: readonly (readonly string[])[];
  readonly first: number;
  readonly count: number;
  readonly key: string;
}

/** How far `compressNames` may merge. */
export interface CompressOptions {
  /**
   * Merge differing non-integer components only in the last position, so
   * a tree listing never groups `mlp.experts.act_fn` with
   * `mlp.shared_experts.act_fn`. Default false.
   */
  readonly wordsOnlyLast?: boolean;
}

/**
 * Compresses `names` into brace patterns. `keyOf(i)` separates names that
 * must not share a group (e.g. different classes); default: none.
 */
export function compressNames(names: readonly string[], keyOf: (i: number) => string = () => '', options: CompressOptions = {}): NameGroup[] {
  let rows: Row[] = names.map((n, i) => ({ cols: n.split('.').map((c) => [c]), first: i, count: 1, key: keyOf(i) }));
  const maxDepth = rows.reduce((m, r) => Math.max(m, r.cols.length), 0);
  for (let changed = true; changed; ) {
    changed = false;
    for (let c = maxDepth - 1; c >= 0; c--) {
      const merged = mergeColumn(rows, c, options.wordsOnlyLast === true);
      if (merged.length < rows.length) changed = true;
      rows = merged;
    }
  }
  return rows
    .sort((a, b) => a.first - b.first)
    .map((r) => ({ pattern: r.cols.map(renderSet).join('.'), count: r.count, first: r.first, key: r.key }));
}

/** Merges rows equal everywhere except column `c` (rows shorter than `c + 1` are kept). */
function mergeColumn(rows: readonly Row[], c: number, wordsOnlyLast: boolean): Row[] {
  const groups = new Map<string, Row[]>();
  const out: Row[] = [];
  for (const r of rows) {
    if (r.cols.length <= c) {
      out.push(r);
      continue;
    }
    const k = `${r.key}\u0000${r.cols.length}\u0000${r.cols.map((s, i) => (i === c ? '' : s.join('\u0001'))).join('\u0002')}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  for (const all of groups.values()) {
    const wordsApart = wordsOnlyLast && c < all[0]!.cols.length - 1;
    const g = wordsApart ? all.filter((r) => r.cols[c]!.every((v) => /^\d+$/.test(v))) : all;
    if (wordsApart) {
      const numeric = new Set(g);
      for (const r of all) if (!numeric.has(r)) out.push(r);
    }
    if (g.length <= 1) {
      for (const r of g) out.push(r);
      continue;
    }
    const values: string[] = [];
    const seen = new Set<string>();
    for (const r of g) {
      for (const v of r.cols[c]!) {
        if (!seen.has(v)) {
          seen.add(v);
          values.push(v);
        }
      }
    }
    // Merging is only exact when the rows' sets in column c are disjoint.
    if (values.length !== g.reduce((s, r) => s + r.cols[c]!.length, 0)) {
      for (const r of g) out.push(r);
      continue;
    }
    const cols = g[0]!.cols.map((s, i) => (i === c ? values : s));
    out.push({ cols, first: g.reduce((m, r) => Math.min(m, r.first), Infinity), count: g.reduce((s, r) => s + r.count, 0), key: g[0]!.key });
  }
  return out;
}

/** Renders one component's set of values. */
function renderSet(values: readonly string[]): string {
  if (values.length === 1) return values[0]!;
  if (values.every((v) => /^(0|[1-9]\d*)$/.test(v))) return `{${integerRanges(values.map(Number))}}`;
  const prefix = commonAffix(values, false);
  const rest = values.map((v) => v.slice(prefix.length));
  const suffix = commonAffix(rest, true);
  const middles = rest.map((v) => v.slice(0, v.length - suffix.length));
  return `${prefix}{${middles.join(',')}}${suffix}`;
}

/** `0..63` / `1,3,5..9`: sorted, runs of three or more collapsed. */
function integerRanges(xs: readonly number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j]! + 1) j++;
    if (j - i >= 2) parts.push(`${s[i]}..${s[j]}`);
    else for (let k = i; k <= j; k++) parts.push(String(s[k]));
    i = j + 1;
  }
  return parts.join(',');
}

/** Longest common prefix (or suffix) that leaves every value non-empty, cut at a `_` boundary. */
function commonAffix(values: readonly string[], suffix: boolean): string {
  const first = values[0]!;
  let n = 0;
  const at = (v: string, k: number) => (suffix ? v[v.length - 1 - k] : v[k]);
  while (values.every((v) => n < v.length - 1 && at(v, n) === at(first, n))) n++;
  const affix = suffix ? first.slice(first.length - n) : first.slice(0, n);
  const cut = suffix ? affix.indexOf('_') : affix.lastIndexOf('_');
  if (cut < 0) return '';
  return suffix ? affix.slice(cut) : affix.slice(0, cut + 1);
}

/** One line summary: the patterns joined by `, `, at most `limit` of them, then `… (N more)`. */
export function summarizeNames(names: readonly string[], limit = 3): string {
  const groups = compressNames(names);
  const shown = groups.slice(0, limit).map((g) => g.pattern);
  const rest = groups.slice(limit).reduce((s, g) => s + g.count, 0);
  return rest > 0 ? `${shown.join(', ')} … (${rest} more)` : shown.join(', ');
}
