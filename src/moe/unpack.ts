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
import type { ClassInfo, ModuleTree, ParamInfo } from '../model/module-tree.js';
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
 *
 * Writes the result's columns directly, sized up front: one pass over the
 * input, and the per-expert `weight`/`bias` ParamInfo objects are shared by
 * every expert of a block (they are immutable), so unpacking 70k Linear
 * modules allocates little beyond their names.
 */
export function applyRewrites(tree: ModuleTree, resolution: MoeResolution): ModuleTree {
  const unpack = new Map<number, ResolvedRewrite>();
  let added = 0;
  let paramCount = tree.params.length;
  for (const r of resolution.rewrites) {
    if (r.rewrite !== 'unpack-fused-experts' || !r.expert) continue;
    unpack.set(r.experts.index, r);
    added += r.experts.count * (1 + r.expert.linears.length) + (r.unpackedActFn !== undefined ? 1 : 0);
    paramCount -= tree.paramStart[r.experts.index + 1]! - tree.paramStart[r.experts.index]!;
    for (const l of r.expert.linears) paramCount += r.experts.count * (l.bias ? 2 : 1);
  }
  if (unpack.size === 0) return tree;

  const classes: ClassInfo[] = [...tree.classes];
  const classIndex = new Map(classes.map((c, i) => [c.name, i]));
  const classId = (name: string): number => {
    let id = classIndex.get(name);
    if (id === undefined) {
      id = classes.length;
      const bases = CREATED_CLASSES[name] ?? ['Module'];
      classes.push({ name, mro: [name, ...bases] });
      classIndex.set(name, id);
    }
    return id;
  };

  const n = tree.names.length;
  const size = n + added;
  // Sized up front: growing arrays of ~100k entries by doubling is what costs here.
  const names = new Array<string>(size);
  const parents = new Int32Array(size);
  const classIds = new Uint32Array(size);
  const paramStart = new Uint32Array(size + 1);
  const params = new Array<ParamInfo>(paramCount);
  let paramAt = 0;
  const newIndex = new Int32Array(n);
  let at = 0;
  const emit = (name: string, cls: number, parent: number): number => {
    names[at] = name;
    parents[at] = parent;
    classIds[at] = cls;
    paramStart[at] = paramAt;
    return at++;
  };
  // Experts modules whose subtree gets an `act_fn` appended once it closes.
  const pendingActFn: { experts: number; at: number; cls: number }[] = [];
  const closeActFns = (i: number): void => {
    while (pendingActFn.length > 0 && (i >= n || !isInside(tree, i, pendingActFn[pendingActFn.length - 1]!.experts))) {
      const p = pendingActFn.pop()!;
      emit(`${names[p.at]}.act_fn`, p.cls, p.at);
    }
  };

  for (let i = 0; i < n; i++) {
    if (pendingActFn.length > 0) closeActFns(i);
    const parent = tree.parents[i]!;
    const r = unpack.get(i);
    if (r === undefined) {
      newIndex[i] = emit(tree.names[i]!, tree.classIds[i]!, parent < 0 ? -1 : newIndex[parent]!);
      for (let p = tree.paramStart[i]!; p < tree.paramStart[i + 1]!; p++) params[paramAt++] = tree.params[p]!;
      continue;
    }
    const expert = r.expert!;
    const prefix = tree.names[i]!;
    const container = emit(prefix, classId(r.linearExpertsClass), newIndex[parent]!);
    newIndex[i] = container;
    const memberClass = classId(expert.class);
    const linearClass = classId('Linear');
    const suffixes = expert.linears.map((l) => `.${l.name}`);
    for (let e = 0; e < r.experts.count; e++) {
      const memberName = `${prefix}.${e}`;
      const member = emit(memberName, memberClass, container);
      for (let k = 0; k < expert.linears.length; k++) {
        const linear = expert.linears[k]!;
        emit(memberName + suffixes[k]!, linearClass, member);
        params[paramAt++] = linear.weight;
        if (linear.bias) params[paramAt++] = linear.bias;
      }
    }
    if (r.unpackedActFn !== undefined && !hasChild(tree, i, 'act_fn')) {
      pendingActFn.push({ experts: i, at: container, cls: classId(r.unpackedActFn) });
    }
  }
  closeActFns(n);
  paramStart[size] = paramAt;
  return {
    modelType: tree.modelType,
    origin: {
      kind: 'rewrite',
      description: `${tree.origin.description}, ${unpack.size} fused experts module${unpack.size === 1 ? '' : 's'} unpacked`,
    },
    names,
    parents,
    classIds,
    classes,
    paramStart,
    params,
  };
}

/** True when module i is `ancestor` or inside its subtree. */
function isInside(tree: ModuleTree, i: number, ancestor: number): boolean {
  for (let a = i; a >= ancestor; a = tree.parents[a]!) if (a === ancestor) return true;
  return false;
}

/** True when module i has a direct child named `local`. */
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
