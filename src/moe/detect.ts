/**
 * Finds modules that look like MoE blocks from the tree alone — class names
 * are not consulted — so a module-tree dump of an unknown or remote-code
 * model is checked as thoroughly as a built-in architecture.
 *
 * A block is the parent of an experts container that has a router sibling:
 * - experts container: a module holding two or more 3-D parameters with the
 *   same leading dimension E ≥ 2 (fused experts: `gate_up_proj`, `down_proj`
 *   …), or a ModuleList of two or more numbered MLP-like children (each with
 *   at least two `Linear` children);
 * - router: a sibling module named like `gate`/`router` (not a shared-expert
 *   gate), or any sibling whose 2-D `weight` has E rows (a Linear with
 *   `out_features == E`), or a parameter of the block named like a router
 *   with E rows.
 */
import { classIsA, classOf, localName, type ModuleTree } from '../model/module-tree.js';

/** How a detected experts container stores its experts. */
export type DetectedLayout = 'fused' | 'module_list';

/** The experts container of a detected block. */
export interface DetectedExperts {
  readonly index: number;
  readonly name: string;
  readonly class: string;
  readonly layout: DetectedLayout;
  /** Number of experts: the leading dimension of the 3-D params, or the number of list members. */
  readonly count: number;
}

/** Where a detected block's router is. */
export interface DetectedRouter {
  /** Qualified name of the router module, or of the block's router parameter. */
  readonly name: string;
  /** `module` for a router submodule, `param` for a parameter of the block itself. */
  readonly kind: 'module' | 'param';
  /** The router module's class (absent for a parameter). */
  readonly class?: string;
}

/** One module that looks like an MoE block. */
export interface MoeLikeModule {
  readonly index: number;
  readonly name: string;
  readonly class: string;
  readonly experts: DetectedExperts;
  readonly router: DetectedRouter;
}

/** Child lists of a tree in compressed form: children of i are `list[start[i]..start[i+1])`, in order. */
export interface ChildIndex {
  readonly start: Uint32Array;
  readonly list: Uint32Array;
}

/** Builds the child lists of a tree in O(n). */
export function childIndex(tree: ModuleTree): ChildIndex {
  const n = tree.names.length;
  const start = new Uint32Array(n + 1);
  for (let i = 1; i < n; i++) start[tree.parents[i]! + 1]!++;
  for (let i = 0; i < n; i++) start[i + 1]! += start[i]!;
  const fill = start.slice(0, n);
  const list = new Uint32Array(Math.max(0, n - 1));
  for (let i = 1; i < n; i++) list[fill[tree.parents[i]!]!++] = i;
  return { start, list };
}

const ROUTER_NAME = /gate|router/i;
const DIGITS = /^\d+$/;

/** Leading dimension shared by two or more 3-D params of module i, or 0. */
export function fusedExpertCount(tree: ModuleTree, i: number): number {
  const end = tree.paramStart[i + 1]!;
  let best = 0;
  for (let p = tree.paramStart[i]!; p < end; p++) {
    const shape = tree.params[p]!.shape;
    if (shape.length !== 3 || shape[0]! < 2 || shape[0]! <= best) continue;
    for (let q = p + 1; q < end; q++) {
      const other = tree.params[q]!.shape;
      if (other.length === 3 && other[0] === shape[0]) {
        best = shape[0]!;
        break;
      }
    }
  }
  return best;
}

/** True when module i has at least two direct `Linear` children (an MLP-like module). */
function isMlpLike(tree: ModuleTree, children: ChildIndex, i: number): boolean {
  let linears = 0;
  for (let c = children.start[i]!; c < children.start[i + 1]!; c++) {
    if (classIsA(classOf(tree, children.list[c]!), 'Linear') && ++linears >= 2) return true;
  }
  return false;
}

/** Number of members when module i is a ModuleList of numbered MLP-like modules, else 0. */
export function moduleListExpertCount(tree: ModuleTree, children: ChildIndex, i: number): number {
  if (!classIsA(classOf(tree, i), 'ModuleList')) return 0;
  let members = 0;
  for (let c = children.start[i]!; c < children.start[i + 1]!; c++) {
    const child = children.list[c]!;
    if (!DIGITS.test(localName(tree.names[child]!))) continue;
    if (!isMlpLike(tree, children, child)) return 0;
    members++;
  }
  return members >= 2 ? members : 0;
}

/** Rows of module i's 2-D `weight` param, or -1 when it has none. */
function weightRows(tree: ModuleTree, i: number): number {
  for (let p = tree.paramStart[i]!; p < tree.paramStart[i + 1]!; p++) {
    const param = tree.params[p]!;
    if (param.name === 'weight' && param.shape.length === 2) return param.shape[0]!;
  }
  return -1;
}

/** The router of block `block` whose experts container is `experts` with `count` experts, if any. */
export function findRouter(
  tree: ModuleTree,
  children: ChildIndex,
  block: number,
  experts: number,
  count: number,
): DetectedRouter | undefined {
  let byName: number | undefined;
  let byRows: number | undefined;
  for (let c = children.start[block]!; c < children.start[block + 1]!; c++) {
    const sibling = children.list[c]!;
    if (sibling === experts) continue;
    const local = localName(tree.names[sibling]!);
    if (/shared/i.test(local)) continue;
    const rows = weightRows(tree, sibling);
    if (ROUTER_NAME.test(local) && (rows === -1 || rows === count)) {
      if (rows === count) return moduleRouter(tree, sibling);
      byName ??= sibling;
    } else if (rows === count) {
      byRows ??= sibling;
    }
  }
  const chosen = byName ?? byRows;
  if (chosen !== undefined) return moduleRouter(tree, chosen);
  for (let p = tree.paramStart[block]!; p < tree.paramStart[block + 1]!; p++) {
    const param = tree.params[p]!;
    if (ROUTER_NAME.test(param.name) && param.shape[0] === count) {
      const prefix = tree.names[block]!;
      return { name: prefix === '' ? param.name : `${prefix}.${param.name}`, kind: 'param' };
    }
  }
  return undefined;
}

function moduleRouter(tree: ModuleTree, i: number): DetectedRouter {
  return { name: tree.names[i]!, kind: 'module', class: classOf(tree, i).name };
}

/** The experts container facts of module i, if it is one (fused params or a ModuleList of MLPs). */
export function detectExperts(tree: ModuleTree, children: ChildIndex, i: number): DetectedExperts | undefined {
  const fused = fusedExpertCount(tree, i);
  const listed = fused > 0 ? 0 : moduleListExpertCount(tree, children, i);
  if (fused === 0 && listed === 0) return undefined;
  return {
    index: i,
    name: tree.names[i]!,
    class: classOf(tree, i).name,
    layout: fused > 0 ? 'fused' : 'module_list',
    count: fused > 0 ? fused : listed,
  };
}

/** Every MoE-like module of the tree, in tree order. One block per experts container. */
export function detectMoeLike(tree: ModuleTree, children: ChildIndex = childIndex(tree)): MoeLikeModule[] {
  const found: MoeLikeModule[] = [];
  for (let i = 1; i < tree.names.length; i++) {
    const experts = detectExperts(tree, children, i);
    if (experts === undefined) continue;
    const block = tree.parents[i]!;
    const router = findRouter(tree, children, block, i, experts.count);
    if (router === undefined) continue;
    found.push({ index: block, name: tree.names[block]!, class: classOf(tree, block).name, experts, router });
  }
  return found.sort((a, b) => a.index - b.index);
}
