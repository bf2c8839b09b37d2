/**
 * The modifier registry: every name llm-compressor main's `ModifierFactory`
 * accepts as a recipe key, and which of them are QuantizationMixin
 * modifiers (they resolve a quantization config).
 */
import type { ModifierType } from '../ir/types.js';

/** Every registered modifier name (exact, case-sensitive). */
export const MODIFIER_TYPES: readonly ModifierType[] = [
  'QuantizationModifier',
  'GPTQModifier',
  'AWQModifier',
  'SmoothQuantModifier',
  'LogarithmicEqualizationModifier',
  'QuIPModifier',
  'SpinQuantModifier',
  'AutoRoundModifier',
  'SparseGPTModifier',
  'WandaPruningModifier',
  'ConstantPruningModifier',
  'MagnitudePruningModifier',
  'REAPPruningModifier',
];

/** Modifiers built on `QuantizationMixin`. */
export const QUANTIZATION_MODIFIERS: ReadonlySet<string> = new Set(['QuantizationModifier', 'GPTQModifier', 'AutoRoundModifier']);

/** Modifiers whose class default is `requires_calibration_data = True`. */
export const CALIBRATED_MODIFIERS: ReadonlySet<string> = new Set([
  'GPTQModifier',
  'AWQModifier',
  'SmoothQuantModifier',
  'LogarithmicEqualizationModifier',
  'AutoRoundModifier',
  'SparseGPTModifier',
  'WandaPruningModifier',
  'REAPPruningModifier',
]);
