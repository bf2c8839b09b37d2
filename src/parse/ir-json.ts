/**
 * Reading back `quantc export --to json`: the exported IR (recognised by its
 * top-level `stages` and `modifiers` lists, which no llm-compressor recipe
 * has) becomes the llm-compressor recipe dict it was built from — modifiers
 * under `<stage>_stage` / `<group>_modifiers` with their materialized
 * arguments, the header and MoE settings under `quantc:` — so it compiles to
 * the same IR.
 */

interface IrJson {
  readonly name?: string | null;
  readonly version?: string | null;
  readonly model?: string | null;
  readonly moe?: { calibrateAllExperts?: boolean; onUnsupported?: string; minExpertTokens?: number; onLowCoverage?: string; rewrites?: readonly Record<string, unknown>[] };
  readonly stages: readonly unknown[];
  readonly modifiers: readonly { type: string; stage: string; group: string; args: Record<string, unknown> }[];
}

function isIrJson(x: unknown): x is IrJson {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const o = x as Record<string, unknown>;
  return Array.isArray(o.stages) && Array.isArray(o.modifiers) && !Object.keys(o).some((k) => k.endsWith('_stage'));
}

/** The recipe dict an exported IR describes, or null when `value` is not one. */
export function recipeDictOfIr(value: unknown): Record<string, unknown> | null {
  if (!isIrJson(value)) return null;
  const recipe: Record<string, unknown> = {};
  const header = Object.fromEntries(['name', 'version', 'model'].filter((k) => typeof value[k as 'name'] === 'string').map((k) => [k, value[k as 'name']]));
  const quantc: Record<string, unknown> = {};
  if (Object.keys(header).length > 0) quantc.recipe = header;
  if (value.moe) {
    // Defaults are left out: the IR holds them anyway, and settings spelled out without use draw warnings.
    const m = value.moe;
    const moe: Record<string, unknown> = {};
    if (m.calibrateAllExperts === false) moe.calibrate_all_experts = false;
    if (m.onUnsupported !== undefined && m.onUnsupported !== 'error') moe.on_unsupported = m.onUnsupported;
    if (m.minExpertTokens !== undefined && m.minExpertTokens !== 1) moe.min_expert_tokens = m.minExpertTokens;
    if (m.onLowCoverage !== undefined && m.onLowCoverage !== 'error') moe.on_low_coverage = m.onLowCoverage;
    if (m.rewrites && m.rewrites.length > 0) moe.rewrites = m.rewrites.map(({ origin: _origin, ...r }) => r);
    if (Object.keys(moe).length > 0) quantc.moe = moe;
  }
  if (Object.keys(quantc).length > 0) recipe.quantc = quantc;
  for (const m of value.modifiers) {
    const stage = (recipe[`${m.stage}_stage`] ??= {}) as Record<string, Record<string, unknown>>;
    const group = (stage[`${m.group}_modifiers`] ??= {}) as Record<string, unknown>;
    group[m.type] = m.args;
  }
  return recipe;
}
