import { describe, expect, it } from 'vitest';
import { calibrateRatios, type CalibrateBenchRow } from './bench/calibrate.js';

const quantc: CalibrateBenchRow = {
  engine: 'quantc',
  device: 'cuda',
  dtype: 'bfloat16',
  tokens: 4096,
  seconds: 4,
  tokensPerSecond: 1024,
  timings: { create: 500, build: 300, release: 200, run: 2900, sessions: 1, runs: 4, firstRuns: 900, firstRunCount: 1 },
  run: 2,
};
const pytorch = (over: Partial<CalibrateBenchRow>): CalibrateBenchRow => ({ engine: 'pytorch', device: 'cuda', dtype: 'bfloat16', tokens: 4096, seconds: 2, tokensPerSecond: 2048, ...over });

describe('calibration benchmark ratios', () => {
  it('compares passes without one-time costs and end to end with PyTorch load and first pass', () => {
    const [r, ...rest] = calibrateRatios([quantc, pytorch({ loadSeconds: 1.5, firstPassSeconds: 0.75, batches: 4 })]);
    expect(rest).toEqual([]);
    // quantc's passes: 4 s less 0.5 + 0.3 + 0.2 s made once.
    expect(r!.quantcPassSeconds).toBeCloseTo(3, 12);
    expect(r!.passes).toBeCloseTo(2 / 3, 12);
    // PyTorch end to end: load, first pass, and three of the four timed batches.
    expect(r!.pytorchEndToEndSeconds).toBeCloseTo(1.5 + 0.75 + 1.5, 12);
    expect(r!.endToEnd).toBeCloseTo(3.75 / 4, 12);
    expect(r!.quantc).toBe('quantc bfloat16 run 2');
  });

  it('pairs rows of the same device and dtype only, and PyTorch rows with their load timed', () => {
    const rows = [
      quantc,
      pytorch({ dtype: 'float32', loadSeconds: 1, firstPassSeconds: 1, batches: 4 }),
      pytorch({ device: 'cpu', loadSeconds: 1, firstPassSeconds: 1, batches: 4 }),
      pytorch({}),
      pytorch({ observe: 'linear', loadSeconds: 1, firstPassSeconds: 1, batches: 4 }),
    ];
    expect(calibrateRatios(rows).map((r) => r.pytorch)).toEqual(["pytorch bfloat16 with llm-compressor's observers"]);
  });
});
