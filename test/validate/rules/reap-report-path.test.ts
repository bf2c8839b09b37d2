import { describe, expect, it } from 'vitest';
import { diagnose, recipe } from '../harness.js';

describe('reap-report-path', () => {
  it('reports a report path that is not JSON', () => {
    expect(diagnose(recipe(`
    REAPPruningModifier: {sparsity: 0.5, report_path: out/report.txt}`))).toEqual([
      '3:55 error reap-report-path REAPPruningModifier "report_path" must end in ".json", got "out/report.txt".',
    ]);
  });
  it('accepts a .json path', () => {
    expect(diagnose(recipe(`
    REAPPruningModifier: {sparsity: 0.5, report_path: out/report.json}`))).toEqual([]);
  });
});
