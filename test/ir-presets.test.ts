import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PRESET_NAMES, isPreset, presetScheme } from '../src/ir/presets.js';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/llm-compressor/presets.json', import.meta.url), 'utf8')) as Record<string, unknown>;

describe('compressed-tensors presets', () => {
  it('defines exactly the presets of compressed-tensors 0.18, in order', () => {
    expect(PRESET_NAMES).toEqual(Object.keys(fixture));
  });
  for (const name of Object.keys(fixture)) {
    it(`${name} equals preset_name_to_scheme("${name}", ["Linear"])`, () => {
      expect(presetScheme(name, ['Linear'])).toEqual(fixture[name]);
    });
  }
  it('is case-insensitive like is_preset_scheme', () => {
    expect(isPreset('nvfp4')).toBe(true);
    expect(presetScheme('w4a16', ['Linear'])).toEqual(fixture.W4A16);
    expect(isPreset('W9A16')).toBe(false);
  });
});
