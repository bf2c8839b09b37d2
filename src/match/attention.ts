/**
 * Cached-attention modules: where compressed-tensors attaches KV-cache
 * (and query) quantization. c-t recognises them by class name and by the
 * projections they hold, not by the recipe's targets.
 */
import type { ModuleTree } from '../model/module-tree.js';
import { compilePattern } from './pattern.js';

/** Child names that mark an attention module as holding a KV cache. */
const KV_PROJECTIONS = ['k_proj', 'v_proj', 'qkv_proj', 'kv_b_proj'] as const;

/** The targets c-t writes for a kv-cache scheme into the checkpoint config. */
export const KV_CACHE_TARGETS: readonly string[] = ['re:.*(self_attn|attention)$'];

/**
 * True when module `m` is what c-t calls a cached attention module: its
 * class name contains `attention` (any case) and it has a `k_proj`,
 * `v_proj`, `qkv_proj` or `kv_b_proj` child. (c-t also requires a
 * `past_key_value(s)` argument on `forward`; every transformers attention
 * class with those projections has one.)
 */
export function isCachedAttention(tree: ModuleTree, m: number): boolean {
  if (!tree.classes[tree.classIds[m]!]!.name.toLowerCase().includes('attention')) return false;
  // Children follow their parent in pre-order; the subtree ends at the
  // first module whose parent precedes m.
  const prefixLength = tree.names[m]!.length + (m === 0 ? 0 : 1);
  for (let c = m + 1; c < tree.names.length && tree.parents[c]! >= m; c++) {
    if (tree.parents[c] === m && (KV_PROJECTIONS as readonly string[]).includes(tree.names[c]!.slice(prefixLength))) return true;
  }
  return false;
}

/** Where a kv-cache scheme lands. */
export interface KvCacheModules {
  /** Every cached attention module: each gets `k_scale`/`v_scale` (ignore does not apply). */
  readonly modules: readonly number[];
  /**
   * Those whose name the saved config's `kv_cache_scheme` targets
   * (`re:.*(self_attn|attention)$`) do not match: a loader that resolves
   * the scales by those targets will not find them.
   */
  readonly outsideSavedTargets: readonly number[];
}

/** The modules a `kv_cache_scheme` applies to (c-t `_apply_kv_cache_scheme`). */
export function kvCacheModules(tree: ModuleTree): KvCacheModules {
  const saved = compilePattern({ text: KV_CACHE_TARGETS[0]!, origin: undefined }).value;
  const modules: number[] = [];
  const outsideSavedTargets: number[] = [];
  for (let m = 0; m < tree.names.length; m++) {
    if (!isCachedAttention(tree, m)) continue;
    modules.push(m);
    if (!saved.test!(tree.names[m]!)) outsideSavedTargets.push(m);
  }
  return { modules, outsideSavedTargets };
}
