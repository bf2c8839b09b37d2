/**
 * The calibration subgraphs llm-compressor's sequential pipeline would
 * trace: `sequential_targets` default to the model's `_no_split_modules`
 * (the decoder-layer class in transformers 5), one subgraph per target
 * module plus a leading one for everything before the first; the last
 * target's subgraph also runs what follows it (final norm, `lm_head`).
 */
import { classOf, type ModuleTree } from '../model/module-tree.js';
import { dtypeBytes, numel } from './estimate.js';

/** Calibration settings the estimates assume (llm-compressor's usual example values). */
export const CALIBRATION_ASSUMPTIONS = { batchSize: 1, seqLen: 2048, samples: 512 } as const;

/** One subgraph: a sequential target module and what it holds. */
export interface Subgraph {
  readonly name: string;
  /** Module indices inside the subgraph (the target and its descendants). */
  readonly modules: readonly number[];
  readonly paramBytes: number;
  /** Hidden states in and out for one batch, fp32 upper bound. */
  readonly activationBytes: number;
}

/** Subgraphs in execution order, and the target classes that cut them. */
export interface Subgraphs {
  readonly targets: readonly string[];
  readonly list: readonly Subgraph[];
}

/** Infers `sequential_targets` (decoder-layer classes) and the subgraphs they cut. */
export function calibrationSubgraphs(tree: ModuleTree): Subgraphs {
  const targets = [...new Set(tree.classes.filter((c) => c.name.endsWith('DecoderLayer')).map((c) => c.name))];
  const isTarget = new Set(targets);
  const hidden = hiddenSize(tree);
  const activationBytes = CALIBRATION_ASSUMPTIONS.batchSize * CALIBRATION_ASSUMPTIONS.seqLen * hidden * 4 * 2;
  const list: Subgraph[] = [];
  const n = tree.names.length;
  for (let i = 0; i < n; i++) {
    if (!isTarget.has(classOf(tree, i).name)) continue;
    const modules: number[] = [];
    let paramBytes = 0;
    for (let j = i; j < n && (j === i || isDescendant(tree, j, i)); j++) {
      modules.push(j);
      for (let p = tree.paramStart[j]!; p < tree.paramStart[j + 1]!; p++) {
        const param = tree.params[p]!;
        paramBytes += numel(param.shape) * dtypeBytes(param.dtype);
      }
    }
    list.push({ name: tree.names[i]!, modules, paramBytes, activationBytes });
    i += modules.length - 1;
  }
  if (list.length === 0) return { targets: [], list: [{ name: '', modules: [], paramBytes: 0, activationBytes }] };
  // llm-compressor's partition puts what runs before the first target (embeddings) in a subgraph of its
  // own, and what runs after the last (final norm, lm_head) in the last target's subgraph.
  const first = list[0]!.modules[0]!;
  const last = list[list.length - 1]!;
  const end = last.modules[last.modules.length - 1]!;
  const head = outside(tree, 0, first);
  const tail = outside(tree, end + 1, n);
  const withTail = { ...last, modules: [...last.modules, ...tail.modules], paramBytes: last.paramBytes + tail.paramBytes };
  return { targets, list: [{ name: '(before the first target)', ...head, activationBytes }, ...list.slice(0, -1), withTail] };
}

/** Modules in `[from, to)` that hold parameters of their own, with those parameters' bytes. */
function outside(tree: ModuleTree, from: number, to: number): { modules: number[]; paramBytes: number } {
  const modules: number[] = [];
  let paramBytes = 0;
  for (let j = from; j < to; j++) {
    if (tree.paramStart[j] === tree.paramStart[j + 1]) continue;
    modules.push(j);
    for (let p = tree.paramStart[j]!; p < tree.paramStart[j + 1]!; p++) paramBytes += numel(tree.params[p]!.shape) * dtypeBytes(tree.params[p]!.dtype);
  }
  return { modules, paramBytes };
}

function isDescendant(tree: ModuleTree, j: number, ancestor: number): boolean {
  for (let p = tree.parents[j]!; p >= 0; p = tree.parents[p]!) if (p === ancestor) return true;
  return false;
}

/** The embedding width, from the first Embedding weight (0 when unknown). */
function hiddenSize(tree: ModuleTree): number {
  for (let i = 0; i < tree.names.length; i++) {
    if (!classOf(tree, i).mro.includes('Embedding')) continue;
    const w = tree.params.slice(tree.paramStart[i]!, tree.paramStart[i + 1]!).find((p) => p.name === 'weight');
    if (w && w.shape.length === 2) return w.shape[1]!;
  }
  return 0;
}
