/**
 * Model-loading micro-benchmark: expanding published configs (Kimi-K2:
 * 61 layers, 384 experts; GLM-4.7-Flash) into the in-memory module tree,
 * through the same `loadModel` path as `--model org/name`.
 */
import { loadModel } from '../../src/model/load.js';
import { treeSize } from '../../src/model/module-tree.js';

/** One timing result. */
export interface ModelBenchResult {
  readonly name: string;
  readonly modules: number;
  readonly params: number;
  readonly moeBlocks: number;
  /** Wall time of the first load in this process (cold JIT). */
  readonly firstMs: number;
  /** Median wall time of later loads. */
  readonly medianMs: number;
}

/** Loads each bundled model `runs` times and reports first and median times. */
export function benchModelLoad(ids: readonly string[] = ['moonshotai/Kimi-K2-Instruct', 'zai-org/GLM-4.7-Flash'], runs = 9): ModelBenchResult[] {
  return ids.map((id) => {
    const t = performance.now();
    let loaded = loadModel(id).value;
    const first = performance.now() - t;
    const times: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      loaded = loadModel(id).value;
      times.push(performance.now() - t0);
    }
    if (!loaded) throw new Error(`bundled model ${id} failed to load`);
    times.sort((a, b) => a - b);
    return {
      name: `load ${id}`,
      modules: treeSize(loaded.tree),
      params: loaded.tree.params.length,
      moeBlocks: loaded.moe.blocks.length,
      firstMs: first,
      medianMs: times[Math.floor(times.length / 2)]!,
    };
  });
}
