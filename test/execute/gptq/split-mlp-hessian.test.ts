/**
 * GPTQ on a dense MLP split across graphs (as 70B-class MLPs run): the
 * `down_proj` Hessian, accumulated from the slices' activations side by
 * side, must equal the one-graph Hessian up to float order, and GPTQ must
 * reach the same objective with the MLP split as without.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cwdSourceHost } from '../../../src/cli/cwd-host.js';
import { ForwardModel, type TokenBatch } from '../../../src/execute/forward/executor.js';
import { jobFromPlan } from '../../../src/execute/from-plan.js';
import { gptqJob } from '../../../src/execute/gptq/gptq-job.js';
import { HessianStore } from '../../../src/execute/gptq/hessians.js';
import { runSequential, type LayerModifier } from '../../../src/execute/pipeline/sequential.js';
import type { RawTensor } from '../../../src/execute/runtime.js';
import { planRecipe } from '../../../src/plan/plan-recipe.js';
import { DATAFREE, unpackModel } from '../fixtures.js';
import { relativeError } from '../../calibrate-refs.js';

/** The tiny llama's MLP (hidden 128, intermediate 256) as slices of 72, 72, 72 and 40 intermediate rows. */
const SPLIT = 72 * 3 * 128 * 4;
const PROJS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

/** Deterministic batches of unequal sizes and lengths below `vocab`. */
function tokenBatches(vocab: number): TokenBatch[] {
  let s = 7;
  const next = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % vocab);
  const batch = (rows: number, seq: number): number[][] => Array.from({ length: rows }, () => Array.from({ length: seq }, next));
  return [batch(2, 16), batch(1, 16), batch(3, 9), batch(1, 24)];
}

/** Records every layer's Hessians (pass A on the unmodified model) and which observer outputs came. */
class HessianRecorder implements LayerModifier {
  readonly observe = { experts: 'all', hessians: true } as const;
  readonly kinds = new Set<string>();
  readonly hessians = new Map<string, { sum: Float64Array; n: number }>();
  private store = new HessianStore();

  collect(_layer: number, _run: number, rows: number, calls: number, outputs: Readonly<Record<string, RawTensor>>): void {
    const hess: Record<string, RawTensor> = {};
    for (const [name, t] of Object.entries(outputs)) {
      this.kinds.add(name.slice(0, name.indexOf(':')));
      if (name.startsWith('hess')) hess[name] = t;
    }
    this.store.add(hess, rows, calls);
  }

  async finishLayer(layer: number) {
    for (const p of PROJS) {
      const m = `model.layers.${layer}.${p}`;
      const s = this.store.sumOf(m);
      if (s) this.hessians.set(m, { sum: Float64Array.from(s.sum), n: s.n });
    }
    this.store = new HessianStore();
    return { linears: new Map(), vectors: new Map() };
  }
}

describe('GPTQ on an MLP split across graphs', () => {
  it('accumulates the same Hessians as one graph, batch by batch and with runs merged', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const model = await ForwardModel.open(dir);
    const batches = tokenBatches(model.config.vocabSize);
    for (const runBytes of [0, 1 << 30]) {
      const whole = new HessianRecorder();
      await runSequential(model, batches, whole, [], { runBytes });
      const split = new HessianRecorder();
      await runSequential(model, batches, split, [], { runBytes, expertGroupBytes: SPLIT });
      expect(whole.kinds.has('hessrows')).toBe(false);
      expect(split.kinds.has('hessrows')).toBe(true);
      expect(split.kinds.has('join')).toBe(false);
      expect([...split.hessians.keys()].sort()).toEqual([...whole.hessians.keys()].sort());
      expect(whole.hessians.size).toBe(2 * PROJS.length);
      for (const [m, h] of whole.hessians) {
        const s = split.hessians.get(m)!;
        expect(s.n, m).toBe(h.n);
        expect(s.sum.length, m).toBe(h.sum.length);
        expect(relativeError(s.sum, h.sum), `${m} (runBytes ${runBytes})`).toBeLessThan(1e-5);
      }
      const down = split.hessians.get('model.layers.0.mlp.down_proj')!.sum;
      // Symmetric, every block of the split filled (slices 72 wide: the cross-slice blocks are not zero).
      expect(down[5 * 256 + 200]).toBe(down[200 * 256 + 5]);
      expect(down[5 * 256 + 200]).not.toBe(0);
    }
  });

  it('quantizes to the same objective with the MLP split as in one graph', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const recipe = join(dir, 'gptq.yaml');
    await writeFile(recipe, 'quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: [lm_head]\n      actorder: weight\n');
    const planned = await planRecipe(recipe, dir, { source: cwdSourceHost('/') }, 'test');
    expect(planned.build).toBeTruthy();
    const job = jobFromPlan(planned.build!, { modelDir: dir, outDir: join(dir, 'out'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe });
    const model = await ForwardModel.open(dir);
    const batches = tokenBatches(model.config.vocabSize);
    const whole = await gptqJob(job, model, batches);
    const split = await gptqJob(job, model, batches, { expertGroupBytes: SPLIT });
    expect(split.reports.map((r) => r.module)).toEqual(whole.reports.map((r) => r.module));
    expect(split.hessians).toBe(whole.hessians);
    let totalWhole = 0;
    let totalSplit = 0;
    for (let i = 0; i < whole.reports.length; i++) {
      const w = whole.reports[i]!;
      const s = split.reports[i]!;
      expect(s.method, w.module).toBe('gptq');
      expect(s.samples, w.module).toBe(w.samples);
      expect(Math.abs(s.loss - w.loss) / w.loss, w.module).toBeLessThan(1e-3);
      totalWhole += w.loss;
      totalSplit += s.loss;
    }
    expect(Math.abs(totalSplit - totalWhole) / totalWhole).toBeLessThan(1e-4);
  });
});
