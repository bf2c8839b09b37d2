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
  /** Per component: the interned id of that set, so grouping keys are short. */
  readonly ids: readonly number[];
  readonly first: number;
  readonly count: number;
  readonly key: string;
}

/** Interns value sets to small integers for the duration of one `compressNames` call. */
class SetIds {
  private readonly ids = new Map<string, number>();

  of(set: readonly string[]): number {
    const k = set.length === 1 ? set[0]! : set.join('\u0001');
    let id = this.ids.get(k);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(k, id);
    }
    return id;
  }
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
export function compressNames(names: readonly string[], keyOf: (i: number) => string = noKey, options: CompressOptions = {}): NameGroup[] {
  const sets = new SetIds();
  const depths = Int32Array.from(names, depthOf);
  const maxDepth = depths.reduce((m, d) => Math.max(m, d), 0);
  let rows = firstPass(names, depths, keyOf, maxDepth, sets);
  // The first sweep starts one column in: firstPass already merged the last one.
  for (let changed = true, sweep = 0; changed; sweep++) {
    changed = false;
    for (let c = sweep === 0 ? maxDepth - 2 : maxDepth - 1; c >= 0; c--) {
      const merged = mergeColumn(rows, c, options.wordsOnlyLast === true, sets);
      if (merged.length < rows.length) changed = true;
      rows = merged;
    }
  }
  return rows
    .sort((a, b) => a.first - b.first)
    .map((r) => ({ pattern: r.cols.map(renderSet).join('.'), count: r.count, first: r.first, key: r.key }));
}

function noKey(): string {
  return '';
}

function depthOf(name: string): number {
  let d = 1;
  for (let i = name.indexOf('.'); i >= 0; i = name.indexOf('.', i + 1)) d++;
  return d;
}

function rowOf(cols: string[][], first: number, count: number, key: string, sets: SetIds): Row {
  return { cols, ids: cols.map((c) => sets.of(c)), first, count, key };
}

/**
 * The first merge (last column of the deepest names) done on the strings
 * themselves: names sharing everything before their last dot become one
 * row. Equivalent to `mergeColumn(rows, maxDepth - 1)` on one row per name,
 * without allocating those ~100k rows.
 */
function firstPass(names: readonly string[], depths: Int32Array, keyOf: (i: number) => string, maxDepth: number, sets: SetIds): Row[] {
  const shorter: Row[] = [];
  const groups = new Map<string, { prefix: string; key: string; first: number; lasts: string[] }>();
  const keyed = keyOf !== noKey;
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!;
    const key = keyed ? keyOf(i) : '';
    if (maxDepth < 2 || depths[i]! < maxDepth) {
      shorter.push(rowOf(n.split('.').map((c) => [c]), i, 1, key, sets));
      continue;
    }
    const dot = n.lastIndexOf('.');
    const prefix = n.slice(0, dot);
    const k = keyed ? `${key}\u0000${prefix}` : prefix;
    const g = groups.get(k);
    if (g) g.lasts.push(n.slice(dot + 1));
    else groups.set(k, { prefix, key, first: i, lasts: [n.slice(dot + 1)] });
  }
  const out = shorter;
  for (const g of groups.values()) {
    const head = g.prefix.split('.').map((c) => [c]);
    if (g.lasts.length === 1 || new Set(g.lasts).size !== g.lasts.length) {
      // Duplicate names never merge (their sets would not be disjoint).
      g.lasts.forEach((last, j) => out.push(rowOf([...head, [last]], j === 0 ? g.first : names.indexOf(`${g.prefix}.${last}`, g.first + 1), 1, g.key, sets)));
    } else {
      out.push(rowOf([...head, g.lasts], g.first, g.lasts.length, g.key, sets));
    }
  }
  return out;
}

/** Merges rows equal everywhere except column `c` (rows shorter than `c + 1` are kept). */
function mergeColumn(rows: readonly Row[], c: number, wordsOnlyLast: boolean, sets: SetIds): Row[] {
  const groups = new Map<string, Row[]>();
  const out: Row[] = [];
  for (const r of rows) {
    if (r.cols.length <= c) {
      out.push(r);
      continue;
    }
    let k = `${r.key}\u0000${r.cols.length}`;
    for (let i = 0; i < r.ids.length; i++) k += i === c ? ',' : `,${r.ids[i]}`;
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
    const ids = g[0]!.ids.map((id, i) => (i === c ? sets.of(values) : id));
    out.push({ cols, ids, first: g.reduce((m, r) => Math.min(m, r.first), Infinity), count: g.reduce((s, r) => s + r.count, 0), key: g[0]!.key });
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
  // The root module's name is empty; an empty item would read as a stray comma.
  const shown = groups.slice(0, limit).map((g) => (g.pattern === '' ? '(root)' : g.pattern));
  const rest = groups.slice(limit).reduce((s, g) => s + g.count, 0);
  return rest > 0 ? `${shown.join(', ')} … (${rest} more)` : shown.join(', ');
}
