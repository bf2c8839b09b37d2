import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('unknown-preset', () => {
  it('reports a scheme that is not a preset, with a suggestion', () => {
    const [d] = diagnose(recipe(`
    QuantizationModifier: {scheme: NVFP5}`));
    expect(d).toMatch(/^3:36 error unknown-preset Unknown preset scheme name "NVFP5"\. Did you mean "NVFP4"\? Available names: UNQUANTIZED, /);
  });
  it('checks the keys of a scheme mapping and accepts any case', () => {
    expect(diagnose(recipe(`
    QuantizationModifier:
      scheme: {w4a16: [Linear], FP9: [lm_head]}`)).map((d) => d.slice(0, 60))).toEqual(['4:33 error unknown-preset Unknown preset scheme name "FP9". ']);
  });
});
