/**
 * Builds the IR from a validated document: modifiers flattened in execution
 * order, arguments materialized the way llm-compressor's `Recipe.yaml()`
 * writes them (declaration order, defaults filled in, None and `group`
 * dropped), quantization configs resolved, and spans kept on every node.
 */
import { pointer, spanFor, type RecipeDocument, type SpanTable } from '../parse/document.js';
import { CALIBRATED_MODIFIERS, QUANTIZATION_MODIFIERS } from '../validate/modifiers.js';
import { modifierFields } from './modifier-fields.js';
import { isRecord, resolveQuantArgs } from './quant-args.js';
import { asList, quantizationNeedsCalibration, resolveQuantization, resolveScheme } from './resolve.js';
import type { ModifierIR, ModifierType, MoeSettings, RecipeIR } from './types.js';

/** Fields llm-compressor never writes back: excluded from dumps, or unrepresentable in safe YAML. */
const NEVER_SERIALIZED: Readonly<Record<string, readonly string[]>> = {
  AWQModifier: ['offload_device'],
  SpinQuantModifier: ['mappings', 'norm_mappings'],
};

/** The value pydantic would hold for one field, before dumping. */
function fieldValue(type: string, name: string, given: unknown): unknown {
  if (given === undefined || given === null) return given;
  if (QUANTIZATION_MODIFIERS.has(type)) {
    if (name === 'targets') return asList(given, []);
    if (name === 'scheme' && isRecord(given)) return Object.fromEntries(Object.entries(given).map(([k, v]) => [k, asList(v, [])]));
    if (name === 'config_groups' && isRecord(given)) {
      return Object.fromEntries(Object.entries(given).map(([k, v]) => [k, isRecord(v) ? resolveScheme(v) : v]));
    }
    if (name === 'kv_cache_scheme' && isRecord(given)) return resolveQuantArgs(given);
  }
  if (name === 'rotations' && Array.isArray(given)) {
    return given.map((r) => (type === 'SpinQuantModifier' ? String(r).toUpperCase() : String(r).toLowerCase()));
  }
  return given;
}

/** Arguments as `Recipe.yaml()` writes them, with `requires_calibration_data` set. */
export function materializeArgs(type: string, args: Readonly<Record<string, unknown>>, requiresCalibrationData: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const skip = NEVER_SERIALIZED[type] ?? [];
  for (const field of modifierFields(type)) {
    if (field.name === 'group' || skip.includes(field.name)) continue;
    if (field.name === 'requires_calibration_data') {
      out[field.name] = requiresCalibrationData;
      continue;
    }
    const value = fieldValue(type, field.name, Object.hasOwn(args, field.name) ? args[field.name] : field.default);
    if (value !== undefined && value !== null) out[field.name] = value;
  }
  return out;
}

function buildMoe(document: RecipeDocument, spans: SpanTable): MoeSettings {
  const moe = document.moe ?? {};
  return {
    calibrateAllExperts: moe.calibrate_all_experts ?? true,
    onUnsupported: moe.on_unsupported ?? 'error',
    minExpertTokens: moe.min_expert_tokens ?? 1,
    onLowCoverage: moe.on_low_coverage ?? 'error',
    rewrites: (moe.rewrites ?? []).map((r, i) => ({ ...r, origin: spanFor(spans, pointer('moe', 'rewrites', i)) })),
    origin: spans.get(pointer('moe'))?.key ?? spans.get(pointer('moe'))?.value,
  };
}

/** Builds the IR. The document must have passed `validateRecipe` without errors. */
export function buildIr(document: RecipeDocument, spans: SpanTable): RecipeIR {
  const modifiers: ModifierIR[] = [];
  document.stages.forEach((stage, s) =>
    stage.groups.forEach((group, g) =>
      group.modifiers.forEach((m, i) => {
        const ptr = pointer('stages', s, 'groups', g, 'modifiers', i);
        const quantization = QUANTIZATION_MODIFIERS.has(m.type) ? resolveQuantization(m.args, { spans, ptr: `${ptr}/args` }) : null;
        const given = m.args.requires_calibration_data;
        const declared = typeof given === 'boolean' ? given : CALIBRATED_MODIFIERS.has(m.type);
        // The QuantizationMixin validator keeps a true value and otherwise computes it from the config.
        const requiresCalibrationData = declared || (quantization !== null && quantizationNeedsCalibration(quantization));
        modifiers.push({
          type: m.type as ModifierType,
          index: modifiers.length,
          stage: stage.name,
          group: group.name,
          args: materializeArgs(m.type, m.args, requiresCalibrationData),
          requiresCalibrationData,
          quantization,
          origin: spanFor(spans, ptr, 'key'),
        });
      }),
    ),
  );
  return {
    name: document.recipe?.name ?? null,
    version: document.recipe?.version ?? null,
    model: document.recipe?.model ?? null,
    moe: buildMoe(document, spans),
    stages: document.stages.map((st, s) => ({ name: st.name, origin: spanFor(spans, pointer('stages', s), 'key') })),
    modifiers,
  };
}
