/**
 * Applies resolved calibration rewrites to a ModuleTree: every fused experts
 * module becomes llm-compressor main's `LinearExperts2D` structure, so
 * target matching after rewrites sees exactly the modules llm-compressor
 * quantizes. Also derives the summaries the planner reports.
 *
 * The unpacked structure, in `named_modules()` order: the experts module
 * itself (class `LinearExperts2D`, or `Llama4LinearExperts`), then for each
 * expert `<i>` an `ExpertMLPWithGate` with `up_proj`, `gate_proj`,
 * `down_proj` Linear children (or `ExpertMLPWithoutGate` with `up_proj`,
 * `down_proj`), then the experts module's original children (`act_fn`),
 * which llm-compressor registers after the list members.
 */
import { TreeBuilder, classOf, type ModuleTree } from '../model/module-tree.js';
import { catalogEntryForBlock } from './catalog.js';
import type { MoeResolution, ResolvedRewrite } from './resolve.js';
import type { RewriteKind } from './types.js';

/** Base classes (after the class itself) of the modules unpacking creates. */
const CREATED_CLASSES: Readonly<Record<string, readonly string[]>> = {
  LinearExperts2D: ['ModuleList', 'Module'],
  Llama4LinearExperts: ['LinearExperts2D', 'ModuleList', 'Module'],
  ExpertMLPWithGate: ['ExpertMLP', 'Module'],
  ExpertMLPWithoutGate: ['ExpertMLP', 'Module'],
  Linear: ['Module'],
};

/**
 * Returns a new tree with every `unpack-fused-experts` rewrite applied (the
 * input is not modified; it is returned as is when nothing is unpacked).
 * Linear time in the size of the result; no object per module beyond the
 * builder's columns.
 */
export function applyRewrites(tree: ModuleTree, resolution: MoeResolution): ModuleTree {
  const unpack = new Map<number, ResolvedRewrite>();
  for (const r of resolution.rewrites) if (r.rewrite === 'unpack-fused-experts' && r.expert) unpack.set(r.experts.index, r);
  if (unpack.size === 0) return tree;

  const b = new TreeBuilder();
  for (const c of tree.classes) b.defineClass(c.name, c.mro.slice(1));
  const define = (name: string): void => void b.defineClass(name, CREATED_CLASSES[name] ?? ['Module']);
  define('Linear');

  const n = tree.names.length;
  const newIndex = new Int32Array(n);
  // Experts modules whose subtree still needs an `act_fn` appended once it closes.
  const pendingActFn: { experts: number; newIndex: number; cls: string }[] = [];
  for (let i = 0; i < n; i++) {
    const parent = tree.parents[i]!;
    while (pendingActFn.length > 0 && !isInside(tree, i, pendingActFn[pendingActFn.length - 1]!.experts)) {
      const p = pendingActFn.pop()!;
      b.child(p.newIndex, 'act_fn', p.cls);
    }
    const r = unpack.get(i);
    if (r === undefined) {
      const at = b.add(tree.names[i]!, classOf(tree, i).name, parent < 0 ? -1 : newIndex[parent]!);
      newIndex[i] = at;
      for (let p = tree.paramStart[i]!; p < tree.paramStart[i + 1]!; p++) {
        const info = tree.params[p]!;
        b.param(at, info.name, info.shape, info.dtype);
      }
      continue;
    }
    define(r.linearExpertsClass);
    const expert = r.expert!;
    define(expert.class);
    const at = b.add(tree.names[i]!, r.linearExpertsClass, newIndex[parent]!);
    newIndex[i] = at;
    const prefix = tree.names[i]!;
    for (let e = 0; e < r.experts.count; e++) {
      const member = b.add(`${prefix}.${e}`, expert.class, at);
      for (const linear of expert.linears) {
        const l = b.child(member, linear.name, 'Linear');
        b.param(l, 'weight', linear.weight.shape, linear.weight.dtype);
        if (linear.bias) b.param(l, 'bias', linear.bias.shape, linear.bias.dtype);
      }
    }
    if (r.unpackedActFn !== undefined && !hasChild(tree, i, 'act_fn')) {
      define(r.unpackedActFn);
      pendingActFn.push({ experts: i, newIndex: at, cls: r.unpackedActFn });
    }
  }
  while (pendingActFn.length > 0) {
    const p = pendingActFn.pop()!;
    b.child(p.newIndex, 'act_fn', p.cls);
  }
  return b.build(tree.modelType, {
    kind: 'rewrite',
    description: `${tree.origin.description}, ${unpack.size} fused experts module${unpack.size === 1 ? '' : 's'} unpacked`,
  });
}

/** True when module i is `ancestor` or inside its subtree. */
function isInside(tree: ModuleTree, i: number, ancestor: number): boolean {
  for (let a = i; a >= ancestor; a = tree.parents[a]!) if (a === ancestor) return true;
  return false;
}

function hasChild(tree: ModuleTree, i: number, local: string): boolean {
  const name = `${tree.names[i]}.${local}`;
  for (let j = i + 1; j < tree.names.length && isInside(tree, j, i); j++) if (tree.names[j] === name) return true;
  return false;
}

/** One rewritten block as the plan JSON's `moe.rewrites[]` records it. */
export interface RewriteSummary {
  /** The MoE block module, e.g. `model.layers.1.mlp`. */
  readonly module: string;
  /** Its class, e.g. `Glm4MoeLiteMoE`. */
  readonly class: string;
  readonly rewrite: RewriteKind;
  /** Number of routed experts in the block. */
  readonly experts: number;
  /** The experts container that is replaced (unpacked) or re-routed. */
  readonly expertsModule: string;
  /** Whether a recipe declaration (not the built-in catalog) supplied the rewrite. */
  readonly declared: boolean;
}

/** Per-block summaries, in tree order. */
export function rewriteSummaries(resolution: MoeResolution): RewriteSummary[] {
  return resolution.rewrites.map((r) => ({
    module: r.module,
    class: r.class,
    rewrite: r.rewrite,
    experts: r.experts.count,
    expertsModule: r.experts.name,
    declared: r.source === 'declared',
  }));
}

/** Totals over a resolution. */
export interface RewriteCounts {
  /** Blocks with a rewrite. */
  readonly blocks: number;
  /** Blocks whose fused experts are unpacked. */
  readonly unpacked: number;
  /** Blocks whose Linear experts are only re-routed. */
  readonly routeAll: number;
  /** Experts turned into per-expert modules. */
  readonly expertsUnpacked: number;
  /** `Linear` modules the unpacking adds. */
  readonly linearAdded: number;
  /** All modules the unpacking adds (expert MLPs, their Linears, added `act_fn`s). */
  readonly modulesAdded: number;
}

/** Counts what `applyRewrites` adds, without building the tree. */
export function rewriteCounts(resolution: MoeResolution): RewriteCounts {
  let unpacked = 0;
  let expertsUnpacked = 0;
  let linearAdded = 0;
  let modulesAdded = 0;
  for (const r of resolution.rewrites) {
    if (r.rewrite !== 'unpack-fused-experts' || !r.expert) continue;
    unpacked++;
    expertsUnpacked += r.experts.count;
    linearAdded += r.experts.count * r.expert.linears.length;
    modulesAdded += r.experts.count * (1 + r.expert.linears.length) + (r.unpackedActFn !== undefined ? 1 : 0);
  }
  return {
    blocks: resolution.rewrites.length,
    unpacked,
    routeAll: resolution.rewrites.length - unpacked,
    expertsUnpacked,
    linearAdded,
    modulesAdded,
  };
}

/**
 * llm-compressor main's view: `[experts module, original class, replacement
 * class]` for every fused experts module it linearizes (fixtures: `replaced`).
 */
export function linearizedModules(resolution: MoeResolution): [string, string, string][] {
  return resolution.rewrites
    .filter((r) => r.rewrite === 'unpack-fused-experts')
    .map((r) => [r.experts.name, r.experts.class, r.linearExpertsClass]);
}

/**
 * llm-compressor 0.11's view: `[block, class, calibration wrapper]` for every
 * block its registry would have wrapped (exact class name lookup; fixtures:
 * `legacy_replaced`). Blocks absent here were skipped silently by 0.11.
 */
export function legacyReplaced(resolution: MoeResolution): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (const r of resolution.rewrites) {
    const wrapper = catalogEntryForBlock(r.class)?.llmCompressor.legacy;
    if (wrapper) out.push([r.module, r.class, wrapper.class]);
  }
  return out;
}
