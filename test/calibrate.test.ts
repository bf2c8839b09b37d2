import { describe, expect, test } from 'vitest';
import { calibrate, joinBatches } from '../src/execute/calibrate/calibrate.js';
import { fp8InputScale, intInputQParams, nvfp4GlobalScale } from '../src/execute/calibrate/observers.js';
import { windows } from '../src/execute/calibrate/perplexity.js';
import { ForwardModel } from '../src/execute/forward/executor.js';
import { emptyRuntimeTimings } from '../src/execute/runtime.js';
import { modelWithTokenizer, textRefs } from './calibrate-refs.js';

interface CalibratedRefs {
  readonly calibration_seq_len: number;
  readonly calibrated: Record<string, Record<string, number>>;
}

const SCALES = { FP8: fp8InputScale, NVFP4: nvfp4GlobalScale } as const;

const MOE_FAMILIES = ['olmoe', 'granitemoe', 'phimoe'] as const;

describe("FP8 kv-cache scales match llm-compressor's (memoryless: the last batch of one window)", () => {
  for (const name of ['llama', 'qwen3_moe', 'glm4_moe_lite', ...MOE_FAMILIES]) {
    test(name, async () => {
      const refs = (await textRefs(name)) as unknown as CalibratedRefs & Awaited<ReturnType<typeof textRefs>>;
      const model = await ForwardModel.open(await modelWithTokenizer(name));
      const result = await calibrate(model, windows(refs.text_ids, refs.calibration_seq_len, 1));
      const ref = refs.calibrated.kv_cache!;
      expect(Object.keys(ref).length).toBe(2 * model.config.layers);
      for (const [tensor, want] of Object.entries(ref)) {
        const states = tensor.replace(/\.k_scale$/, '.key_states').replace(/\.v_scale$/, '.value_states');
        const got = fp8InputScale(result.lastBatch.get(states)!);
        expect(Math.abs(got - want) / want, `${tensor}: ${got} vs ${want}`).toBeLessThan(1e-5);
        // The running statistics differ: llm-compressor's kv observer forgets earlier batches.
        expect(fp8InputScale(result.inputs.get(states)!)).toBeGreaterThanOrEqual(got);
      }
    });
  }
});

describe("INT8 static input scales and zero points match llm-compressor's (memoryless: the last window; experts see every token)", () => {
  test.each([
    ['llama', true],
    ['llama', false],
    ['qwen3_moe', true],
    ['qwen3_moe', false],
    ['glm4_moe_lite', true],
    ['glm4_moe_lite', false],
    ...MOE_FAMILIES.flatMap((m) => [[m, true], [m, false]] as const),
  ] as const)('%s, symmetric %s', async (name, symmetric) => {
    const refs = (await textRefs(name)) as unknown as CalibratedRefs & Awaited<ReturnType<typeof textRefs>>;
    const model = await ForwardModel.open(await modelWithTokenizer(name));
    const result = await calibrate(model, windows(refs.text_ids, refs.calibration_seq_len, 1));
    const ref = refs.calibrated[symmetric ? 'INT8/sym' : 'INT8/asym'] as unknown as Record<string, number[]>;
    expect(Object.keys(ref).length).toBeGreaterThanOrEqual(14);
    for (const [module, [scale, zeroPoint]] of Object.entries(ref)) {
      const got = intInputQParams(result.lastBatch.get(module)!, 8, symmetric);
      expect(Math.abs(got.scale - scale!) / scale!, `${module} scale ${got.scale} vs ${scale}`).toBeLessThan(1e-5);
      expect(got.zeroPoint, module).toBe(symmetric ? 0 : zeroPoint);
    }
  });
});

describe("static input scales match llm-compressor's oneshot on the same tokens", () => {
  for (const name of ['llama', 'qwen3_moe', 'glm4_moe_lite', ...MOE_FAMILIES]) {
    const small = 40 * 3 * 128 * 4;
    for (const [allExperts, groupBytes] of name === 'llama' ? ([[true, undefined], [true, small]] as const) : ([[true, undefined], [false, undefined], [true, small], [false, small]] as const)) {
      const mode = name === 'llama' ? '' : allExperts ? ' (calibrate_all_experts)' : ' (routed tokens only)';
      test(`${name}${mode}${groupBytes ? ', MLPs and experts split into small graphs' : ''}`, async () => {
        const refs = (await textRefs(name)) as unknown as CalibratedRefs & Awaited<ReturnType<typeof textRefs>>;
        const model = await ForwardModel.open(await modelWithTokenizer(name));
        const result = await calibrate(model, windows(refs.text_ids, refs.calibration_seq_len, 4), allExperts, groupBytes);
        for (const [scheme, scale] of Object.entries(SCALES)) {
          const ref = refs.calibrated[name === 'llama' ? scheme : `${scheme}/${allExperts ? 'all' : 'routed'}`]!;
          const unseen = [...Object.keys(ref)].filter((m) => !result.inputs.has(m));
          // Only an expert the router never chose has no statistics (llm-compressor keeps its initial scale).
          for (const m of unseen) {
            const [, layer, expert] = /layers\.(\d+)\.(?:mlp|block_sparse_moe)\.experts\.(\d+)\./.exec(m) ?? [];
            expect(allExperts || layer === undefined ? m : '', `${m} has no statistics`).toBe('');
            expect(result.coverage.layers.find((l) => l.layer === Number(layer))!.routed[Number(expert)]).toBe(0);
          }
          const linears = [...result.inputs].filter(([m]) => !m.endsWith('_states'));
          // PhiMoE's router is a Linear, observed in case a recipe quantizes it; the references' recipe ignores it.
          expect(linears.map(([m]) => m).filter((m) => !(m in ref) && !m.endsWith('.mlp.router'))).toEqual([]);
          for (const [module, s] of linears) {
            if (!(module in ref)) continue;
            const got = scale(s);
            expect(Math.abs(got - ref[module]!) / ref[module]!, `${scheme} ${module}: ${got} vs ${ref[module]}`).toBeLessThan(1e-5);
          }
        }
        const tokens = Math.floor(refs.text_ids.length / refs.calibration_seq_len) * refs.calibration_seq_len;
        expect(result.coverage.tokens).toBe(tokens);
        for (const l of result.coverage.layers) {
          expect(l.routed.reduce((a, b) => a + b, 0)).toBe(tokens * 2);
          expect(l.seen).toEqual(allExperts ? l.routed.map(() => tokens) : l.routed);
        }
        expect(result.coverage.layers.length).toBe(name === 'llama' ? 0 : name === 'glm4_moe_lite' ? 1 : 2);
      });
    }
  }
});

describe('calibration in chunks of batches (hidden states over the resident bound) measures what one pass does', () => {
  test.each(['llama', 'qwen3_moe'] as const)('%s', async (name) => {
    const refs = (await textRefs(name)) as unknown as CalibratedRefs & Awaited<ReturnType<typeof textRefs>>;
    const model = await ForwardModel.open(await modelWithTokenizer(name));
    const batches = windows(refs.text_ids, refs.calibration_seq_len, 2);
    const whole = await calibrate(model, batches, false);
    // Room for the hidden states of one batch only: every batch is its own chunk.
    const perBatch = 2 * refs.calibration_seq_len * model.config.hidden * 4;
    const chunked = await calibrate(model, batches, false, undefined, { maxResidentBytes: perBatch });
    expect(batches.length).toBeGreaterThan(2);
    expect([...chunked.inputs]).toEqual([...whole.inputs]);
    expect([...chunked.lastBatch]).toEqual([...whole.lastBatch]);
    expect(chunked.coverage).toEqual(whole.coverage);
  });
});

describe('batches joined into larger runs (runTokens) measure what a run per batch does', () => {
  test('joinBatches joins consecutive batches of one length up to the token bound, the last batch alone', () => {
    const b = (rows: number, seq: number, tok: number): number[][] => Array.from({ length: rows }, () => Array(seq).fill(tok));
    const batches = [b(1, 4, 1), b(2, 4, 2), b(1, 4, 3), b(1, 3, 4), b(1, 3, 5), b(1, 3, 6)];
    expect(joinBatches(batches, 12)).toEqual([[...b(1, 4, 1), ...b(2, 4, 2)], b(1, 4, 3), [...b(1, 3, 4), ...b(1, 3, 5)], b(1, 3, 6)]);
    expect(joinBatches(batches, 4)).toEqual(batches);
    // A batch over the bound runs alone, as it is.
    expect(joinBatches([b(3, 4, 1), b(1, 4, 2), b(1, 4, 3), b(1, 4, 4)], 8)).toEqual([b(3, 4, 1), [...b(1, 4, 2), ...b(1, 4, 3)], b(1, 4, 4)]);
    expect(joinBatches(batches.slice(0, 2), 100)).toEqual(batches.slice(0, 2));
    // Where nothing reads the last batch's statistics it joins the run before it: runs of one shape.
    expect(joinBatches(batches, 12, false)).toEqual([[...b(1, 4, 1), ...b(2, 4, 2)], b(1, 4, 3), [...b(1, 3, 4), ...b(1, 3, 5), ...b(1, 3, 6)]]);
    const eight = Array.from({ length: 8 }, (_, i) => b(1, 4, i));
    expect(joinBatches(eight, 16, false).map((r) => r.length)).toEqual([4, 4]);
    expect(joinBatches(eight, 16).map((r) => r.length)).toEqual([4, 3, 1]);
  });

  test.each(['llama', 'qwen3_moe'] as const)('%s', async (name) => {
    const refs = (await textRefs(name)) as unknown as CalibratedRefs & Awaited<ReturnType<typeof textRefs>>;
    const model = await ForwardModel.open(await modelWithTokenizer(name));
    const batches = windows(refs.text_ids, refs.calibration_seq_len, 1);
    expect(batches.length).toBeGreaterThan(3);
    const timings = { ...emptyRuntimeTimings(), build: 0 };
    model.timings = timings;
    const apart = await calibrate(model, batches, false);
    const runsApart = timings.runs;
    const joined = await calibrate(model, batches, false, undefined, { runTokens: 3 * refs.calibration_seq_len });
    // Fewer runs (one per graph and joined batch), the same statistics.
    expect(timings.runs - runsApart).toBeLessThan(runsApart);
    expect([...joined.inputs.keys()]).toEqual([...apart.inputs.keys()]);
    for (const [m, s] of apart.inputs) {
      const j = joined.inputs.get(m)!;
      expect(Math.abs(j.min - s.min), m).toBeLessThanOrEqual(1e-6 * Math.abs(s.min));
      expect(Math.abs(j.max - s.max), m).toBeLessThanOrEqual(1e-6 * Math.abs(s.max));
    }
    expect([...joined.lastBatch.keys()]).toEqual([...apart.lastBatch.keys()]);
    for (const [m, s] of apart.lastBatch) expect([joined.lastBatch.get(m)!.min, joined.lastBatch.get(m)!.max], m).toEqual([s.min, s.max]);
    expect(joined.coverage).toEqual(apart.coverage);
    // Without the last batch alone: fewer runs still, the same running statistics, no last-batch ones.
    const joinedRuns = timings.runs - runsApart;
    const before = timings.runs;
    const running = await calibrate(model, batches, false, undefined, { runTokens: 3 * refs.calibration_seq_len, lastBatchAlone: false });
    expect(timings.runs - before).toBeLessThanOrEqual(joinedRuns);
    for (const [m, s] of apart.inputs) {
      const j = running.inputs.get(m)!;
      expect(Math.abs(j.min - s.min), m).toBeLessThanOrEqual(1e-6 * Math.abs(s.min));
      expect(Math.abs(j.max - s.max), m).toBeLessThanOrEqual(1e-6 * Math.abs(s.max));
    }
    expect(running.lastBatch.size).toBe(0);
    expect(running.coverage).toEqual(apart.coverage);
  });
});
