import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

const moe = (body: string) => `quantc:\n  moe:\n${body}\n`;

describe('moe-coverage-unused', () => {
  it('warns when the coverage policy is set but every modifier is data-free', () => {
    expect(diagnose(moe('    min_expert_tokens: 64\n    on_low_coverage: fallback') + recipe(`
    QuantizationModifier: {targets: [Linear], scheme: FP8_DYNAMIC}`), 'moe-coverage-unused')).toEqual([
      '3:5 warning moe-coverage-unused "min_expert_tokens" and "on_low_coverage" have no effect: no modifier of this recipe uses calibration data, so no expert\'s coverage is ever counted.',
    ]);
    expect(diagnose(moe('    on_low_coverage: warning') + recipe(`
    QuantizationModifier: {targets: [Linear], scheme: W4A16}`), 'moe-coverage-unused')).toEqual([
      '3:5 warning moe-coverage-unused "on_low_coverage" has no effect: no modifier of this recipe uses calibration data, so no expert\'s coverage is ever counted.',
    ]);
  });
  it('accepts the policy beside a calibrated modifier: static activations, GPTQ, or a declared requires_calibration_data', () => {
    for (const m of ['QuantizationModifier: {targets: [Linear], scheme: NVFP4}', 'GPTQModifier: {targets: [Linear], scheme: W4A16}', 'QuantizationModifier: {targets: [Linear], scheme: W4A16, requires_calibration_data: true}']) {
      expect(diagnose(moe('    min_expert_tokens: 64') + recipe(`\n      ${m}`))).toEqual([]);
    }
  });
  it('says nothing when only the other MoE settings are written', () => {
    expect(diagnose(moe('    calibrate_all_experts: false') + recipe(`
    QuantizationModifier: {targets: [Linear], scheme: FP8_DYNAMIC}`))).toEqual([]);
  });
});
