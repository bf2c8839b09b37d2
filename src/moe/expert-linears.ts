/**
 * The per-expert `Linear` modules a fused experts module unpacks into, with
 * their 2-D weight shapes derived from the fused 3-D parameters exactly as
 * llm-compressor's `ExpertMLPWithGate` / `ExpertMLPWithoutGate` slice them.
 */
import type { ModuleTree, ParamInfo } from '../model/module-tree.js';
import type { FusedLayout } from './types.js';

/** One per-expert Linear: `experts.<i>.<name>`. */
export interface ExpertLinear {
  /** `up_proj`, `gate_proj` or `down_proj`. */
  readonly name: string;
  /** The `weight` param, `[out_features, in_features]`. */
  readonly weight: ParamInfo;
  /** The `bias` param, `[out_features]`, when the experts carry biases. */
  readonly bias?: ParamInfo;
}

/** What one unpacked expert looks like. */
export interface ExpertShape {
  /** `ExpertMLPWithGate` or `ExpertMLPWithoutGate`. */
  readonly class: 'ExpertMLPWithGate' | 'ExpertMLPWithoutGate';
  /** In module registration order: `up_proj`, `gate_proj` (with a gate), `down_proj`. */
  readonly linears: readonly ExpertLinear[];
  readonly hidden: number;
  readonly intermediate: number;
}

function param(tree: ModuleTree, i: number, name: string): ParamInfo | undefined {
  for (let p = tree.paramStart[i]!; p < tree.paramStart[i + 1]!; p++) {
    if (tree.params[p]!.name === name) return tree.params[p]!;
  }
  return undefined;
}

/**
 * The expert shape of fused experts module `i` under `layout`, or undefined
 * when its parameters do not fit it (no `down_proj`, or neither
 * `gate_up_proj` nor `up_proj`, or sizes that disagree).
 *
 * `[E, out, in]` (not transposed): `gate_up_proj [E, 2I, H]`, `down_proj [E, H, I]`;
 * transposed: `gate_up_proj [E, H, 2I]`, `down_proj [E, I, H]`. Without a gate,
 * `up_proj` takes `gate_up_proj`'s place with `I` instead of `2I`.
 */
export function expertShape(tree: ModuleTree, i: number, layout: FusedLayout): ExpertShape | undefined {
  const down = param(tree, i, 'down_proj');
  const up = param(tree, i, layout.hasGate ? 'gate_up_proj' : 'up_proj') ?? param(tree, i, 'up_proj');
  if (down === undefined || up === undefined || down.shape.length !== 3 || up.shape.length !== 3) return undefined;
  const [, a, b] = up.shape as [number, number, number];
  const hidden = layout.isTransposed ? a : b;
  const upOut = layout.isTransposed ? b : a;
  const fusedGateUp = up.name === 'gate_up_proj' && layout.hasGate;
  const intermediate = fusedGateUp ? upOut / 2 : upOut;
  const [, da, db] = down.shape as [number, number, number];
  const downIn = layout.isTransposed ? da : db;
  const downOut = layout.isTransposed ? db : da;
  if (!Number.isInteger(intermediate) || downIn !== intermediate || downOut !== hidden) return undefined;

  const bias = layout.hasBias || param(tree, i, 'down_proj_bias') !== undefined;
  const dtype = up.dtype;
  const linear = (name: string, out: number, inp: number): ExpertLinear => ({
    name,
    weight: { name: 'weight', shape: [out, inp], dtype },
    ...(bias ? { bias: { name: 'bias', shape: [out], dtype } } : {}),
  });
  const upProj = linear('up_proj', intermediate, hidden);
  const downProj = linear('down_proj', hidden, intermediate);
  return layout.hasGate
    ? { class: 'ExpertMLPWithGate', linears: [upProj, linear('gate_proj', intermediate, hidden), downProj], hidden, intermediate }
    : { class: 'ExpertMLPWithoutGate', linears: [upProj, downProj], hidden, intermediate };
}
