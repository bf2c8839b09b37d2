import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('smoothquant-oneshot', () => {
  it('reports a SmoothQuant end epoch', () => {
    expect(diagnose(recipe(`
    SmoothQuantModifier: {end: 2}
    GPTQModifier: {scheme: W8A8}`))).toEqual([
      '3:32 error smoothquant-oneshot SmoothQuantModifier can only be applied during one-shot; expected "end" to be null or -1, got 2.',
    ]);
  });
  it('accepts end -1', () => {
    expect(diagnose(recipe(`
    SmoothQuantModifier: {end: -1}`))).toEqual([]);
  });
});
