/**
 * The model as llm-compressor sees it in memory: modules in
 * `named_modules()` order with their classes (and base classes, for class
 * targets that must hit subclasses) and their own parameters.
 *
 * Stored column-wise (arrays plus interned classes) because a fine-grained
 * MoE model after expert unpacking has ~100k modules; one object per module
 * would dominate load and match time.
 */

/** A module class and the `nn.Module` classes of its MRO, itself first. */
export interface ClassInfo {
  readonly name: string;
  /** MRO names, `name` first, ending with `Module`. Only nn.Module subclasses. */
  readonly mro: readonly string[];
}

/** One parameter (or buffer worth reporting) held directly by a module. */
export interface ParamInfo {
  /** Local name, e.g. `weight`, `gate_up_proj`, `e_score_correction_bias`. */
  readonly name: string;
  readonly shape: readonly number[];
  /** torch dtype name without the `torch.` prefix, e.g. `bfloat16`. */
  readonly dtype: string;
}

/** Where a tree came from, for messages and plan headers. */
export interface TreeOrigin {
  /** `config`, `safetensors`, `module-tree-json`, or `rewrite`. */
  readonly kind: string;
  /** Human description, e.g. `config.json (glm4_moe_lite)`. */
  readonly description: string;
}

/** A compact, immutable module tree. Index 0 is the root module (name ""). */
export interface ModuleTree {
  readonly modelType: string | undefined;
  readonly origin: TreeOrigin;
  /** Qualified names in `named_modules()` order. */
  readonly names: readonly string[];
  /** Parent module index, -1 for the root. */
  readonly parents: Int32Array;
  /** Class id per module, into `classes`. */
  readonly classIds: Uint32Array;
  readonly classes: readonly ClassInfo[];
  /** Module i owns params `[paramStart[i], paramStart[i + 1])`. Length = size + 1. */
  readonly paramStart: Uint32Array;
  readonly params: readonly ParamInfo[];
}

/** Number of modules in a tree. */
export function treeSize(tree: ModuleTree): number {
  return tree.names.length;
}

/** The class of module `i`. */
export function classOf(tree: ModuleTree, i: number): ClassInfo {
  return tree.classes[tree.classIds[i]!]!;
}

/** The params held directly by module `i`. */
export function paramsOf(tree: ModuleTree, i: number): readonly ParamInfo[] {
  return tree.params.slice(tree.paramStart[i]!, tree.paramStart[i + 1]!);
}

/** The last dotted component of a qualified module name (`""` for the root). */
export function localName(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? name : name.slice(dot + 1);
}

/** Index of each module by qualified name. Built on demand; O(n). */
export function indexByName(tree: ModuleTree): Map<string, number> {
  const map = new Map<string, number>();
  tree.names.forEach((n, i) => map.set(n, i));
  return map;
}

/** True when class `info` is `target` or has it among its bases. */
export function classIsA(info: ClassInfo, target: string): boolean {
  return info.mro.includes(target);
}

/**
 * Builds a ModuleTree in `named_modules()` order. Modules must be added
 * parent-first (pre-order), which is how every descriptor walks a model.
 */
export class TreeBuilder {
  private readonly names: string[] = [];
  private readonly parents: number[] = [];
  private readonly classIds: number[] = [];
  private readonly classes: ClassInfo[] = [];
  private readonly classIndex = new Map<string, number>();
  private readonly paramOwner: number[] = [];
  private readonly params: ParamInfo[] = [];

  /** Registers a class with its MRO (itself first). Re-registering returns the same id. */
  defineClass(name: string, bases: readonly string[] = ['Module']): number {
    const existing = this.classIndex.get(name);
    if (existing !== undefined) return existing;
    const mro = [name, ...bases.filter((b) => b !== name)];
    if (mro[mro.length - 1] !== 'Module') mro.push('Module');
    const id = this.classes.length;
    this.classes.push({ name, mro });
    this.classIndex.set(name, id);
    return id;
  }

  /** Adds a module; `parent` is the parent's index (-1 only for the root). Returns its index. */
  add(name: string, className: string, parent: number): number {
    const id = this.classIndex.get(className) ?? this.defineClass(className);
    const index = this.names.length;
    this.names.push(name);
    this.parents.push(parent);
    this.classIds.push(id);
    return index;
  }

  /** Adds a child of `parent` named `parentName + "." + local` (or `local` under the root). */
  child(parent: number, local: string, className: string): number {
    const parentName = this.names[parent]!;
    return this.add(parentName === '' ? local : `${parentName}.${local}`, className, parent);
  }

  /** Adds a parameter held directly by module `owner`; must follow the owner's earlier params. */
  param(owner: number, name: string, shape: readonly number[], dtype: string): void {
    this.paramOwner.push(owner);
    this.params.push({ name, shape, dtype });
  }

  /** The number of modules added so far. */
  get size(): number {
    return this.names.length;
  }

  /** Qualified name of module `i`. */
  nameOf(i: number): string {
    return this.names[i]!;
  }

  /** Freezes the builder into a ModuleTree. */
  build(modelType: string | undefined, origin: TreeOrigin): ModuleTree {
    const n = this.names.length;
    // Params may be added out of module order (descriptors add them while
    // walking); a stable sort by owner keeps each module's own order.
    const order = this.paramOwner.map((_, i) => i).sort((a, b) => this.paramOwner[a]! - this.paramOwner[b]! || a - b);
    const paramStart = new Uint32Array(n + 1);
    for (const owner of this.paramOwner) paramStart[owner + 1]!++;
    for (let i = 0; i < n; i++) paramStart[i + 1]! += paramStart[i]!;
    return {
      modelType,
      origin,
      names: this.names,
      parents: Int32Array.from(this.parents),
      classIds: Uint32Array.from(this.classIds),
      classes: this.classes,
      paramStart,
      params: order.map((i) => this.params[i]!),
    };
  }
}
