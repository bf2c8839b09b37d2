import { describe, expect, it } from 'vitest';
import { buildIr } from '../src/ir/build.js';
import { parseYaml } from '../src/parse/yaml.js';
import { validateRecipe } from '../src/validate/index.js';

function ir(text: string) {
  const parsed = parseYaml({ path: 'r.yaml', text }).value!;
  expect(validateRecipe(parsed.document, parsed.spans).filter((d) => d.severity === 'error')).toEqual([]);
  return { ir: buildIr(parsed.document, parsed.spans), text };
}

const one = (mod: string) => `s_stage:\n  g_modifiers:\n    ${mod}\n`;

describe('buildIr', () => {
  it('computes requires_calibration_data like llm-compressor (§2.1)', () => {
    const needs = (scheme: string) => ir(one(`QuantizationModifier: {scheme: ${scheme}}`)).ir.modifiers[0]!.requiresCalibrationData;
    for (const s of ['W4A16', 'W8A16', 'FP8_DYNAMIC', 'FP8_BLOCK', 'W8A8', 'MXFP4', 'MXFP8', 'NVFP4A16']) expect(needs(s), s).toBe(false);
    for (const s of ['NVFP4', 'FP8']) expect(needs(s), s).toBe(true);
    expect(ir(one('QuantizationModifier: {kv_cache_scheme: {num_bits: 8, type: float}}')).ir.modifiers[0]!.requiresCalibrationData).toBe(true);
    expect(ir(one('QuantizationModifier: {scheme: W4A16, weight_observer: imatrix_mse}')).ir.modifiers[0]!.requiresCalibrationData).toBe(true);
    expect(ir(one('GPTQModifier: {scheme: W4A16}')).ir.modifiers[0]!.requiresCalibrationData).toBe(true);
    expect(ir(one('QuIPModifier: {}')).ir.modifiers[0]!.requiresCalibrationData).toBe(false);
    expect(ir(one('QuantizationModifier: {scheme: NVFP4, requires_calibration_data: false}')).ir.modifiers[0]!.requiresCalibrationData).toBe(true);
    expect(ir(one('QuantizationModifier: {scheme: W4A16, requires_calibration_data: true}')).ir.modifiers[0]!.requiresCalibrationData).toBe(true);
    expect(ir(one('SmoothQuantModifier: {requires_calibration_data: false}')).ir.modifiers[0]!.requiresCalibrationData).toBe(false);
  });

  it('names preset groups group_0… in mapping order and keeps explicit config group names', () => {
    const a = ir(one("GPTQModifier: {scheme: {W4A16: 're:.*mlp.*', fp8_dynamic: ['re:.*attn.*']}}")).ir.modifiers[0]!.quantization!;
    expect(a.groups.map((g) => [g.name, g.preset, g.scheme.targets])).toEqual([
      ['group_0', 'W4A16', ['re:.*mlp.*']],
      ['group_1', 'FP8_DYNAMIC', ['re:.*attn.*']],
    ]);
    const b = ir(one('QuantizationModifier: {config_groups: {attn: {targets: [Linear], weights: {num_bits: 8}}}}')).ir.modifiers[0]!.quantization!;
    expect(b.groups.map((g) => g.name)).toEqual(['attn']);
    expect(b.groups[0]!.scheme.weights).toMatchObject({ strategy: 'tensor', observer: 'memoryless_minmax', zp_dtype: null });
  });

  it('applies observer overrides to every group and drops observers for dynamic args by default', () => {
    const q = ir(one('QuantizationModifier: {scheme: {W8A8: [a], W4A16: [b]}, observer: {weights: mse, input: minmax}}')).ir.modifiers[0]!.quantization!;
    expect(q.groups.map((g) => [g.scheme.weights?.observer, g.scheme.input_activations?.observer ?? null])).toEqual([
      ['mse', 'minmax'],
      ['mse', null],
    ]);
  });

  it('keeps a span for every target and ignore entry', () => {
    const { ir: r, text } = ir(one("QuantizationModifier: {targets: [Linear, 're:.*proj$'], scheme: NVFP4, ignore: [lm_head]}"));
    const q = r.modifiers[0]!.quantization!;
    const texts = [...q.groups[0]!.targets, ...q.ignore].map((p) => text.slice(p.origin!.start, p.origin!.end));
    expect(texts).toEqual(['Linear', "'re:.*proj$'", 'lm_head']);
  });

  it('flattens stages in order and keeps stage and group names', () => {
    const r = ir('a_stage:\n  x_modifiers:\n    SparseGPTModifier: {sparsity: 0.5}\nb_stage:\n  y_modifiers:\n    QuantizationModifier: {scheme: FP8}\n').ir;
    expect(r.modifiers.map((m) => [m.index, m.stage, m.group, m.type])).toEqual([
      [0, 'a', 'x', 'SparseGPTModifier'],
      [1, 'b', 'y', 'QuantizationModifier'],
    ]);
    expect(r.stages.map((s) => s.name)).toEqual(['a', 'b']);
  });

  it('derives names with llm-compressor\'s replace(), odd names included', () => {
    const r = ir('my_stage_x_stage:\n  a_modifiers_b_modifiers:\n    QuantizationModifier: {scheme: FP8}\n').ir;
    expect([r.modifiers[0]!.stage, r.modifiers[0]!.group]).toEqual(['my_x', 'a_b']);
  });

  it('applies MoE defaults', () => {
    expect(ir(one('QuantizationModifier: {scheme: FP8}')).ir.moe).toEqual({ calibrateAllExperts: true, onUnsupported: 'error', minExpertTokens: 1, onLowCoverage: 'error', rewrites: [], origin: undefined });
  });
});
