/**
 * When `apply`'s calibration pass joins batches into larger runs
 * (joinedRunTokens): on CUDA, unless last-batch statistics are read of
 * experts that see only their routed tokens; never on the CPU.
 */
import { describe, expect, test } from 'vitest';
import { joinedRunTokens, joinsBatches, readsLastBatch } from '../src/execute/calibrate/calibrate-job.js';
import { CUDA_RUN_TOKENS } from '../src/execute/calibrate/calibrate.js';
import type { ApplyJob } from '../src/execute/types.js';

/** A job of one group whose inputs are FP8, static per tensor, observed by `observer`; a kv cache scheme if asked. */
function job(observer: 'static_minmax' | 'memoryless_minmax' | null, calibrateAllExperts: boolean, kvCache = false): ApplyJob {
  const input = observer === null ? null : { num_bits: 8, type: 'float', symmetric: true, strategy: 'tensor', dynamic: false, observer };
  return {
    groups: [{ name: 'group_0', scheme: { weights: null, input_activations: input } }],
    kvCacheScheme: kvCache ? { num_bits: 8, type: 'float', symmetric: true, strategy: 'tensor', dynamic: false } : null,
    calibration: { calibrateAllExperts },
  } as unknown as ApplyJob;
}

describe('joined calibration runs', () => {
  test('a running observer never reads the last batch; a memoryless one or a kv cache does', () => {
    expect(readsLastBatch(job('static_minmax', false))).toBe(false);
    expect(readsLastBatch(job('memoryless_minmax', true))).toBe(true);
    expect(readsLastBatch(job(null, true, true))).toBe(true);
  });

  test('CUDA joins up to CUDA_RUN_TOKENS unless routed experts would blur their last-batch statistics; the CPU never joins', () => {
    expect(joinedRunTokens(job('static_minmax', false), 'cuda')).toBe(CUDA_RUN_TOKENS);
    // The last batch runs alone: with every expert on every token, every module sees it.
    expect(joinedRunTokens(job('memoryless_minmax', true), 'cuda')).toBe(CUDA_RUN_TOKENS);
    expect(joinedRunTokens(job(null, true, true), 'cuda')).toBe(CUDA_RUN_TOKENS);
    expect(joinedRunTokens(job('memoryless_minmax', false), 'cuda')).toBeUndefined();
    expect(joinedRunTokens(job(null, false, true), 'cuda')).toBeUndefined();
    for (const j of [job('static_minmax', false), job('memoryless_minmax', true)]) expect(joinedRunTokens(j, 'cpu')).toBeUndefined();
    // The same rule decides whether GPTQ's sequential passes merge or loop batches (the last alone).
    expect([job('static_minmax', false), job('memoryless_minmax', true), job('memoryless_minmax', false), job(null, false, true)].map(joinsBatches)).toEqual([true, true, false, false]);
  });
});
