/**
 * Builds a ModuleTree from a tree dumped by PyTorch itself: the oracle
 * `tree.json` shape (`classes` name → MRO, `modules` as `[name, class]`,
 * `params` as `[name, shape, dtype]`), all in `named_modules()` order.
 *
 * The input is assumed well formed (the loader validates it against the
 * module-tree schema first); this function only reshapes it.
 */
import { TreeBuilder, type ModuleTree, type TreeOrigin } from './module-tree.js';

/** The oracle tree dump: what the fixture script writes for any model. */
export interface OracleTreeJson {
  /** Class name → its `nn.Module` MRO, itself first, ending with `Module`. */
  readonly classes: Readonly<Record<string, readonly string[]>>;
  /** `[qualified name, class name]` in `named_modules()` order; root `""` first. */
  readonly modules: readonly (readonly [string, string])[];
  /** `[qualified param name, shape, dtype]` in `named_parameters()` order. */
  readonly params: readonly (readonly [string, readonly number[], string])[];
  readonly model_type?: string;
  readonly model_id?: string;
}

/** Default origin for trees read from a dump. */
const DUMP_ORIGIN: TreeOrigin = { kind: 'module-tree-json', description: 'module tree JSON' };

/**
 * Converts an oracle `tree.json` into a ModuleTree. Parents are found by
 * name (the qualified name up to its last dot); a param belongs to the
 * module named by its prefix.
 */
export function treeFromOracleJson(json: OracleTreeJson, origin: TreeOrigin = DUMP_ORIGIN): ModuleTree {
  const b = new TreeBuilder();
  for (const [name, mro] of Object.entries(json.classes)) b.defineClass(name, mro.slice(1));
  const index = new Map<string, number>();
  for (const [name, cls] of json.modules) {
    index.set(name, b.add(name, cls, name === '' ? -1 : (index.get(parentName(name)) ?? 0)));
  }
  for (const [name, shape, dtype] of json.params) {
    const dot = name.lastIndexOf('.');
    const owner = dot < 0 ? 0 : (index.get(name.slice(0, dot)) ?? 0);
    b.param(owner, dot < 0 ? name : name.slice(dot + 1), shape, dtype);
  }
  return b.build(json.model_type, origin);
}

/** The qualified name of a module's parent (`""` for top-level children). */
export function parentName(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(0, dot);
}
