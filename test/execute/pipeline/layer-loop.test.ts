/**
 * Looped layer passes (layer-loop.ts: one onnxruntime run over a stack of
 * batches, statistics combined on the device) against a run per batch: the
 * same Hessians, observer ranges, routed-token counts and layer outputs up
 * to float order, for batches of unequal sizes and lengths, dense and MoE.
 */
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cwdSourceHost } from '../../../src/cli/cwd-host.js';
import { awqJob } from '../../../src/execute/awq/awq-job.js';
import { ForwardModel, type TokenBatch } from '../../../src/execute/forward/executor.js';
import { jobFromPlan } from '../../../src/execute/from-plan.js';
import { gptqJob } from '../../../src/execute/gptq/gptq-job.js';
import { planRecipe } from '../../../src/plan/plan-recipe.js';
import { groupSlots, LOOP_SLOT_TOKENS, loopedLayer, shareStack, slotGroup, splitStack, stackBatches, stackValues, unstack } from '../../../src/execute/forward/layer-loop.js';
import { HessianStore } from '../../../src/execute/gptq/hessians.js';
import { runSequential, type LayerModifier } from '../../../src/execute/pipeline/sequential.js';
import { toFloat32 } from '../../../src/execute/dtypes.js';
import { emptyRuntimeTimings, type RawTensor } from '../../../src/execute/runtime.js';
import { DATAFREE, unpackModel } from '../fixtures.js';
import { relativeError } from '../../calibrate-refs.js';

/** Deterministic batches of unequal sizes and lengths below `vocab`. */
function tokenBatches(vocab: number): TokenBatch[] {
  let s = 11;
  const next = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % vocab);
  const batch = (rows: number, seq: number): number[][] => Array.from({ length: rows }, () => Array.from({ length: seq }, next));
  return [batch(2, 16), batch(1, 16), batch(3, 9), batch(1, 24), batch(1, 5)];
}

/** Every statistic of pass A, folded as the GPTQ modifier folds them; the layers left unchanged. */
class Recorder implements LayerModifier {
  readonly observe = { experts: 'all', hessians: true } as const;
  readonly hessians = new Map<string, { sum: Float64Array; n: number }>();
  readonly ranges = new Map<string, number[]>();
  readonly runs: number[] = [];
  private store = new HessianStore();
  private names = new Set<string>();

  collect(_layer: number, run: number, rows: number, calls: number, outputs: Readonly<Record<string, RawTensor>>): void {
    this.runs.push(run);
    const hess: Record<string, RawTensor> = {};
    for (const [name, t] of Object.entries(outputs)) {
      if (name.startsWith('hess') || name.startsWith('ehess')) {
        hess[name] = t;
        for (const m of name.slice(name.indexOf(':') + 1).split('|')[0]!.split(',')) this.names.add(m);
      } else {
        const v = Array.from(t.data as Float32Array);
        const prior = this.ranges.get(name);
        const pick = name === 'routed' ? (a: number, b: number) => a + b : /^(c|e)?min:/.test(name) ? Math.min : Math.max;
        this.ranges.set(name, prior ? prior.map((p, i) => pick(p, v[i]!)) : v);
      }
    }
    this.store.add(hess, rows, calls);
  }

  async finishLayer(layer: number) {
    for (const m of this.names) {
      const s = this.store.sumOf(m);
      if (s) this.hessians.set(`${layer}/${m}`, { sum: Float64Array.from(s.sum), n: s.n });
    }
    this.store = new HessianStore();
    this.names = new Set();
    return { linears: new Map(), vectors: new Map() };
  }
}

/** The job `apply` plans for GPTQ W4A16 (lm_head ignored) on the model in `dir`, the recipe written there as `name`. */
async function w4a16GptqJob(dir: string, name: string) {
  const recipe = join(dir, name);
  await writeFile(recipe, 'quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: [lm_head]\n');
  const planned = await planRecipe(recipe, dir, { source: cwdSourceHost('/') }, 'test');
  return jobFromPlan(planned.build!, { modelDir: dir, outDir: join(dir, 'out'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers });
}

/** GPTQ's per-module losses with a model setting off and then on: exactly the same. */
async function expectSameGptq(job: Awaited<ReturnType<typeof w4a16GptqJob>>, model: ForwardModel, batches: readonly TokenBatch[], set: (on: boolean) => void): Promise<void> {
  set(false);
  const off = await gptqJob(job, model, batches);
  set(true);
  const on = await gptqJob(job, model, batches);
  expect(on.reports.map((r) => [r.module, r.loss])).toEqual(off.reports.map((r) => [r.module, r.loss]));
}

describe('looped layer passes', () => {
  for (const arch of ['llama', 'qwen3_moe']) {
    it(`${arch}: the same statistics as a run per batch, in one run per layer`, async () => {
      const dir = await unpackModel(join(DATAFREE, arch, 'base'));
      const model = await ForwardModel.open(dir);
      const batches = tokenBatches(model.config.vocabSize);
      const perBatch = new Recorder();
      model.loopLayers = false;
      await runSequential(model, batches, perBatch, [], { runBytes: 0 });
      const looped = new Recorder();
      model.loopLayers = true;
      await runSequential(model, batches, looped, [], { runBytes: 1 << 30 });
      // One run per layer, against one per batch.
      expect(looped.runs.length).toBe(model.config.layers);
      expect(perBatch.runs.length).toBe(model.config.layers * batches.length);
      expect([...looped.hessians.keys()].sort()).toEqual([...perBatch.hessians.keys()].sort());
      expect(looped.hessians.size).toBeGreaterThan(0);
      for (const [m, h] of perBatch.hessians) {
        const l = looped.hessians.get(m)!;
        expect(l.n, m).toBe(h.n);
        expect(relativeError(l.sum, h.sum), m).toBeLessThan(1e-5);
      }
      expect([...looped.ranges.keys()].sort()).toEqual([...perBatch.ranges.keys()].sort());
      if (arch === 'qwen3_moe') expect(looped.ranges.has('routed')).toBe(true);
      for (const [name, r] of perBatch.ranges) expect(relativeError(looped.ranges.get(name)!, r), name).toBeLessThan(1e-6);
    });
  }

  it('returns each batch\'s layer outputs, from stacks split into several runs alike', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const model = await ForwardModel.open(dir);
    const batches = tokenBatches(model.config.vocabSize);
    const embedded = await model.embed(batches);
    const tables = model.positionTables();
    const expected = (await model.runLayer(0, embedded, {}, tables)).hidden;
    const stack = stackBatches(embedded, model.config.hidden);
    expect(splitStack(stack, 4 * stack.rows * stack.hidden * 2).length).toBe(3);
    for (const runBytes of [1 << 30, 4 * stack.rows * stack.hidden * 2]) {
      const out = await model.runLayerStacked(0, stack, {}, tables, model.weights, true, runBytes);
      const got = unstack(out!);
      expect(got.map((b) => [b.batch, b.seq])).toEqual(expected.map((b) => [b.batch, b.seq]));
      got.forEach((b, i) => expect(relativeError(b.data, expected[i]!.data), `batch ${i}`).toBeLessThan(1e-5));
    }
  });

  it('writes the outputs into memory handed back to it: the same values, split into runs or shared by devices; memory of another size or type is left alone', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const model = await ForwardModel.open(dir);
    const batches = tokenBatches(model.config.vocabSize);
    const tables = model.positionTables();
    const stack = stackBatches(await model.embed(batches), model.config.hidden);
    const expected = (await model.runLayerStacked(0, stack, {}, tables, model.weights, true, 1 << 30))!.data;
    const threeRuns = 2 * 4 * stack.rows * stack.hidden;
    for (const [runBytes, devices] of [[1 << 30, undefined], [threeRuns, undefined], [threeRuns, [0, 1]]] as const) {
      model.deviceIds = devices ? [...devices] : undefined;
      const reuse = new Float32Array(stack.data.length).fill(Number.NaN);
      const out = await model.runLayerStacked(0, stack, {}, tables, model.weights, true, runBytes, undefined, reuse);
      expect(out!.data, `${runBytes}, ${devices}`).toBe(reuse);
      expect(reuse).toEqual(expected);
    }
    model.deviceIds = undefined;
    for (const other of [new Float32Array(stack.data.length + 1), new Uint16Array(stack.data.length)]) {
      const out = await model.runLayerStacked(0, stack, {}, tables, model.weights, true, 1 << 30, undefined, other);
      expect(out!.data).not.toBe(other);
      expect(out!.data).toEqual(expected);
      expect(other.every((v) => v === 0)).toBe(true);
    }
  });

  it("passes the loop's condition through its body: no node carries it (on CUDA one would, and be read back every iteration)", async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const model = await ForwardModel.open(dir);
    const build = (into: Parameters<Parameters<typeof loopedLayer>[0]>[0]): Promise<boolean> => model.buildLayerInto(0, model.weights, into, 'all');
    const looped = await loopedLayer(build, model.config.hidden, 32, true);
    const text = Buffer.from(looped!.bytes).toString('latin1');
    // The body's first output is its condition input itself, `lb_cond`, which no node reads or writes.
    expect(text).toContain('lb_cond');
    expect(text).not.toContain('lb_cond_out');
    expect(text.split('lb_cond').length - 1).toBe(2);
  });

  it('a statistics-only pass leaves out what follows the last observed input: the same statistics, bit for bit, without the down_proj product or the stacked output', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const model = await ForwardModel.open(dir);
    const observe = { experts: 'all', hessians: true } as const;
    const build = (into: Parameters<Parameters<typeof loopedLayer>[0]>[0]): Promise<boolean> => model.buildLayerInto(0, model.weights, into, observe);
    const text = async (keep: boolean): Promise<string> => Buffer.from((await loopedLayer(build, model.config.hidden, 32, keep))!.bytes).toString('latin1');
    const count = (t: string, op: string): number => t.split(op).length - 1;
    const [kept, statsOnly] = [await text(true), await text(false)];
    expect(count(statsOnly, 'MatMul')).toBe(count(kept, 'MatMul') - 1);
    expect(count(kept, 'Pad')).toBe(1);
    expect(count(statsOnly, 'Pad')).toBe(0);
    const stack = stackBatches(await model.embed(tokenBatches(model.config.vocabSize)), model.config.hidden);
    const run = async (keep: boolean): Promise<Record<string, RawTensor>> => {
      let stats: Record<string, RawTensor> = {};
      const out = await model.runLayerStacked(0, stack, { observe }, model.positionTables(), model.weights, keep, 1 << 30, (_run, _s, outputs) => (stats = { ...outputs }));
      expect(out === stack).toBe(!keep);
      delete stats.out;
      return stats;
    };
    const [a, b] = [await run(true), await run(false)];
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    expect(Object.keys(a).some((n) => n.startsWith('hess:') && n.endsWith('down_proj'))).toBe(true);
    for (const name of Object.keys(a)) expect(b[name]!.data, name).toEqual(a[name]!.data);
  });

  it('releases what a modifier keeps across layers once the run ends, also when a layer fails', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const model = await ForwardModel.open(dir);
    const batches = tokenBatches(model.config.vocabSize).slice(0, 2);
    for (const [loop, fail] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      let released = 0;
      const modifier: LayerModifier = {
        observe: { experts: 'all', hessians: false },
        collect: () => undefined,
        finishLayer: async (layer) => {
          if (fail && layer === 1) throw new Error('layer 1 failed');
          return { linears: new Map(), vectors: new Map() };
        },
        release: async () => {
          released++;
        },
      };
      model.loopLayers = loop;
      try {
        const run = runSequential(model, batches, modifier, [], { runBytes: loop ? 1 << 30 : 0 });
        if (fail) await expect(run).rejects.toThrow('layer 1 failed');
        else expect((await run).length).toBe(model.config.layers);
      } finally {
        model.loopLayers = false;
      }
      expect(released, `looped ${loop}, failing ${fail}`).toBe(1);
    }
  });

  it('refuses a layer whose outputs are per-token values (they cannot be combined across batches)', async () => {
    const build = async (into: Parameters<Parameters<typeof loopedLayer>[0]>[0]): Promise<boolean> => {
      into.g.output(into.inputs.hidden, 'x:model.layers.0.mlp.down_proj', 1, ['batch', 'seq', 8]);
      into.g.output(into.inputs.hidden, into.output, 1, ['batch', 'seq', 8]);
      return true;
    };
    expect(await loopedLayer(build, 8, 4, true)).toBeNull();
  });

  it('GPTQ reaches the same objective looped as batch by batch; AWQ, which caches per-token inputs, runs its layers unlooped alike', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const job = async (modifiers: string) => {
      const recipe = join(dir, 'loop.yaml');
      await writeFile(recipe, `quant_stage:\n  quant_modifiers:\n${modifiers}`);
      const planned = await planRecipe(recipe, dir, { source: cwdSourceHost('/') }, 'test');
      expect(planned.build).toBeTruthy();
      return jobFromPlan(planned.build!, { modelDir: dir, outDir: join(dir, 'out'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers });
    };
    const model = await ForwardModel.open(dir);
    const batches = tokenBatches(model.config.vocabSize);
    const gptq = await job('    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: [lm_head]\n');
    // The JavaScript solve, whose float64 column loop gives the same codes from Hessians equal up to float order: the
    // float32 graph solve, like llm-compressor's, flips a code at a rounding boundary here and there (its own tests).
    const mode = process.env.QUANTC_GPTQ_SOLVE;
    process.env.QUANTC_GPTQ_SOLVE = 'js';
    try {
      model.loopLayers = false;
      const plain = await gptqJob(gptq, model, batches);
      model.loopLayers = true;
      const looped = await gptqJob(gptq, model, batches);
      expect(looped.reports.map((r) => [r.module, r.method, r.samples])).toEqual(plain.reports.map((r) => [r.module, r.method, r.samples]));
      for (let i = 0; i < plain.reports.length; i++) expect(Math.abs(looped.reports[i]!.loss / plain.reports[i]!.loss - 1), plain.reports[i]!.module).toBeLessThan(1e-5);
    } finally {
      if (mode === undefined) delete process.env.QUANTC_GPTQ_SOLVE;
      else process.env.QUANTC_GPTQ_SOLVE = mode;
    }

    const awq = await job('    AWQModifier: {}\n    QuantizationModifier: {targets: [Linear], scheme: W4A16_ASYM, ignore: [lm_head]}\n');
    model.loopLayers = false;
    const awqPlain = await awqJob(awq, model, batches);
    model.loopLayers = true;
    const awqLooped = await awqJob(awq, model, batches);
    expect(awqLooped.reports.map((r) => [r.smooth, r.best, r.tokens])).toEqual(awqPlain.reports.map((r) => [r.smooth, r.best, r.tokens]));
    for (let i = 0; i < awqPlain.reports.length; i++) expect(relativeError(awqLooped.reports[i]!.scales, awqPlain.reports[i]!.scales)).toBeLessThan(1e-5);
  });

  it('GPTQ with last-batch statistics (an FP8 kv cache, static FP8 inputs) runs the last batch alone, merged or looped: the scales of a run per batch', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const model = await ForwardModel.open(dir);
    // Batches of one length, so that merged or looped runs would take the last one in with the others.
    const batches = tokenBatches(model.config.vocabSize).map((b) => b.map((row) => row.slice(0, 5)));
    const recipe = join(dir, 'last-batch.yaml');
    const fp8 = '{num_bits: 8, type: float, strategy: tensor, dynamic: false, symmetric: true}';
    await writeFile(
      recipe,
      `quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      config_groups:\n        g: {targets: [Linear], weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 16}, input_activations: ${fp8}}\n      ignore: [lm_head]\n      kv_cache_scheme: ${fp8}\n`,
    );
    const planned = await planRecipe(recipe, dir, { source: cwdSourceHost('/') }, 'test');
    expect(planned.build).toBeTruthy();
    const job = jobFromPlan(planned.build!, { modelDir: dir, outDir: join(dir, 'out'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers });
    const scales = (run: Awaited<ReturnType<typeof gptqJob>>) =>
      new Map(run.job.extraTensors!.map((t) => [t.name, Array.from(toFloat32(t.bytes, t.dtype as 'BF16' | 'F16' | 'F32'))]));
    const timings = { ...emptyRuntimeTimings(), build: 0 };
    model.timings = timings;
    // A run per batch, as before; merged runs; looped runs.
    const apart = await gptqJob(job, model, batches, { runBytes: 0 });
    const runsApart = timings.runs;
    const merged = await gptqJob(job, model, batches);
    const runsMerged = timings.runs - runsApart;
    model.loopLayers = true;
    const looped = await gptqJob(job, model, batches);
    expect(runsMerged).toBeLessThan(runsApart);
    const want = scales(apart);
    expect([...want.keys()].some((k) => k.endsWith('k_scale'))).toBe(true);
    expect([...want.keys()].some((k) => k.endsWith('input_scale'))).toBe(true);
    // Scales that differ by more than a bf16 step (the model computes in bf16: merged runs may round a value the other way).
    const off = (got: Map<string, number[]>): string[] => [...want].filter(([name, v]) => relativeError(got.get(name)!, v) > 2 ** -7).map(([name]) => name);
    for (const got of [scales(merged), scales(looped)]) {
      expect([...got.keys()]).toEqual([...want.keys()]);
      expect(off(got)).toEqual([]);
    }
    // The last batch merged with the others: its scales would be those of every batch.
    model.loopLayers = false;
    const blurred = await gptqJob(job, model, batches, { lastBatchAlone: false });
    expect(off(scales(blurred)).length).toBeGreaterThan(want.size / 2);
  });

  it('layers that feed their weights share one session per pass and compute the same, in float32 and bf16, dense and MoE, for GPTQ too', async () => {
    for (const [arch, precision] of [
      ['llama', 'fp32'],
      ['llama', 'bf16'],
      ['qwen3_moe', 'fp32'],
    ] as const) {
      const dir = await unpackModel(join(DATAFREE, arch, 'base'));
      const model = await ForwardModel.open(dir);
      model.loopLayers = true;
      model.usePrecision(precision);
      const batches = tokenBatches(model.config.vocabSize);
      const pass = async (feed: boolean) => {
        model.feedWeights = feed;
        model.timings = { ...emptyRuntimeTimings(), build: 0 };
        const recorder = new Recorder();
        await runSequential(model, batches, recorder, [], { runBytes: 1 << 30 });
        return { recorder, sessions: model.timings.sessions };
      };
      const constants = await pass(false);
      const fed = await pass(true);
      model.timings = undefined;
      // One session for every layer's pass A against one per layer.
      expect(constants.sessions, arch).toBe(model.config.layers);
      expect(fed.sessions, arch).toBe(1);
      expect([...fed.recorder.hessians.keys()].sort()).toEqual([...constants.recorder.hessians.keys()].sort());
      for (const [m, h] of constants.recorder.hessians) expect(fed.recorder.hessians.get(m)!.sum, `${arch} ${precision} ${m}`).toEqual(h.sum);
      expect(fed.recorder.ranges).toEqual(constants.recorder.ranges);

      const stack = stackBatches(await model.embed(batches), model.config.hidden);
      const tables = model.positionTables();
      model.feedWeights = false;
      const expected = await model.runLayerStacked(1, stack, {}, tables, model.weights, true, 1 << 30);
      model.feedWeights = true;
      const got = await model.runLayerStacked(1, stack, {}, tables, model.weights, true, 1 << 30);
      await model.releaseRuntimes();
      expect(got!.data, `${arch} ${precision}`).toEqual(expected!.data);
    }

    // GPTQ's pass B reads the solved weights (float32) as fed inputs.
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const gptq = await w4a16GptqJob(dir, 'fed.yaml');
    const model = await ForwardModel.open(dir);
    model.loopLayers = true;
    const batches = tokenBatches(model.config.vocabSize);
    await expectSameGptq(gptq, model, batches, (on) => (model.feedWeights = on));
  });

  it('a looped layer decodes its fed bf16 weights once per run, before the loop, not at every batch', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const model = await ForwardModel.open(dir);
    model.loopLayers = true;
    model.feedWeights = true;
    const batches = tokenBatches(model.config.vocabSize);
    const stack = stackBatches(await model.embed(batches), model.config.hidden);
    const prefix = join(await mkdtemp(join(tmpdir(), 'quantc-prof-')), 'p');
    process.env.QUANTC_ORT_PROFILE = prefix;
    try {
      await model.runLayerStacked(0, stack, {}, model.positionTables(), model.weights, true, 1 << 30);
      await model.releaseRuntimes();
    } finally {
      delete process.env.QUANTC_ORT_PROFILE;
    }
    const folder = dirname(prefix);
    const events = (await Promise.all((await readdir(folder)).map(async (f) => JSON.parse(await readFile(join(folder, f), 'utf8')) as { cat?: string; name: string; args?: { op_name?: string } }[]))).flat();
    const ran = (op: string): number => events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.args?.op_name === op).length;
    // Each of the layer's seven bf16 Linear weights is decoded once (one Floor each), whatever the number of batches.
    expect(batches.length).toBeGreaterThan(1);
    expect(ran('Loop')).toBe(1);
    expect(ran('Floor')).toBe(7);
  });

  for (const [arch, dtype] of [
    ['llama', 'bfloat16'],
    ['llama_fp16', 'float16'],
  ] as const) {
    it(`a ${dtype} model carries its hidden states between looped passes as ${dtype}: the same statistics, outputs and GPTQ results`, async () => {
      const dir = await unpackModel(join(DATAFREE, arch, 'base'));
      const model = await ForwardModel.open(dir);
      model.loopLayers = true;
      model.usePrecision('bf16');
      expect(model.stackDtype()).toBe(dtype);
      const batches = tokenBatches(model.config.vocabSize);
      const pass = async (compact: boolean) => {
        model.compactStacks = compact;
        const recorder = new Recorder();
        await runSequential(model, batches, recorder, [], { runBytes: 1 << 30 });
        return recorder;
      };
      const wide = await pass(false);
      const compact = await pass(true);
      for (const [m, h] of wide.hessians) expect(compact.hessians.get(m)!.sum, m).toEqual(h.sum);
      expect(compact.ranges).toEqual(wide.ranges);

      const embedded = await model.embed(batches);
      const tables = model.positionTables();
      const floats = stackBatches(embedded, model.config.hidden);
      const halves = stackBatches(embedded, model.config.hidden, dtype);
      expect(halves.dtype).toBe(dtype);
      expect(stackValues(halves)).toEqual(floats.data);
      const out = await model.runLayerStacked(0, halves, {}, tables, model.weights, true, 1 << 30);
      expect(out!.dtype).toBe(dtype);
      expect(stackValues(out!)).toEqual((await model.runLayerStacked(0, floats, {}, tables, model.weights, true, 1 << 30))!.data);
      // Split into runs of two slots (half the bytes of float32 slots per element).
      expect(splitStack(halves, 2 * 2 * halves.rows * halves.hidden).length).toBe(3);
      // Values the dtype does not hold keep a stack float32.
      const holds: [number, boolean, boolean][] = [
        // value, held by bfloat16, held by float16
        [1 + 2 ** -20, false, false],
        [2 ** 20, true, false],
        [2 ** -30, true, false],
        [2 ** -20, true, true],
        [3 * 2 ** -25, true, false],
      ];
      for (const [v, bf16, f16] of holds) {
        const held = dtype === 'bfloat16' ? bf16 : f16;
        expect(stackBatches([{ data: Float32Array.of(1, v), batch: 1, seq: 1 }], 2, dtype).dtype, String(v)).toBe(held ? dtype : 'float32');
      }

      await expectSameGptq(await w4a16GptqJob(dir, 'halves.yaml'), model, batches, (on) => (model.compactStacks = on));
    });
  }

  it('batches of one shape share slots up to loopSlotTokens: fewer iterations, the same outputs, statistics to float order, GPTQ the same objective', async () => {
    const dir = await unpackModel(join(DATAFREE, 'llama', 'base'));
    const model = await ForwardModel.open(dir);
    model.loopLayers = true;
    // Eight sequences of 16 tokens: four to a slot of 64 tokens, two slots; one batch of another length breaks the grouping.
    let seed = 3;
    const next = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % model.config.vocabSize);
    const batches: TokenBatch[] = Array.from({ length: 8 }, () => [Array.from({ length: 16 }, next)]);
    const stack = stackBatches(await model.embed(batches), model.config.hidden);
    expect(slotGroup(stack, 64)).toBe(4);
    expect(groupSlots(stack, 4)!.batches).toEqual([{ batch: 4, seq: 16 }, { batch: 4, seq: 16 }]);
    expect(groupSlots(stack, 3)).toBeNull();
    expect(slotGroup(stack, 16)).toBe(1);
    // At most two a slot (the activations a run may hold): two, dividing eight.
    expect(slotGroup(stack, 64, 2)).toBe(2);
    const ragged = stackBatches(await model.embed([...batches.slice(0, 3), [batches[3]![0]!.slice(0, 9)]]), model.config.hidden);
    expect(groupSlots(ragged, 2)).toBeNull();
    expect(slotGroup(ragged, 1 << 20)).toBe(1);
    const tables = model.positionTables();
    const pass = async (tokens: number) => {
      model.loopSlotTokens = tokens;
      const stats: Record<string, RawTensor>[] = [];
      const out = await model.runLayerStacked(0, stack, { observe: { experts: 'all', hessians: true } }, tables, model.weights, true, 1 << 30, (_, __, s) => void stats.push(s));
      return { out: out!.data, stats };
    };
    try {
      const single = await pass(0);
      const grouped = await pass(64);
      expect(grouped.out).toEqual(single.out);
      expect(Object.keys(grouped.stats[0]!).sort()).toEqual(Object.keys(single.stats[0]!).sort());
      for (const [name, t] of Object.entries(single.stats[0]!)) expect(relativeError(grouped.stats[0]![name]!.data as Float32Array, t.data as Float32Array), name).toBeLessThan(1e-6);
      const job = await w4a16GptqJob(dir, 'gptq-slots.yaml');
      model.loopSlotTokens = 0;
      const one = await gptqJob(job, model, batches);
      model.loopSlotTokens = 64;
      const four = await gptqJob(job, model, batches);
      for (const [i, r] of four.reports.entries()) expect(Math.abs(r.loss / one.reports[i]!.loss - 1), r.module).toBeLessThan(1e-4);
    } finally {
      model.loopSlotTokens = LOOP_SLOT_TOKENS;
      model.loopLayers = false;
    }
  });

  it('several devices share the batches: the same statistics and the same outputs as one', async () => {
    const dir = await unpackModel(join(DATAFREE, 'qwen3_moe', 'base'));
    const model = await ForwardModel.open(dir);
    model.loopLayers = true;
    const batches = tokenBatches(model.config.vocabSize);
    const stack = stackBatches(await model.embed(batches), model.config.hidden);
    // Shares cover every batch once, in order, about equal in rows.
    const shares = shareStack(stack, 3);
    expect(shares.flatMap((s) => s.batches)).toEqual(stack.batches);
    expect(shares.every((s) => s.batches.length > 0)).toBe(true);
    const one = new Recorder();
    await runSequential(model, batches, one, [], { runBytes: 1 << 30 });
    const tables = model.positionTables();
    const single = await model.runLayerStacked(0, stack, {}, tables, model.weights, true, 1 << 30);
    model.deviceIds = [0, 1, 2];
    const three = new Recorder();
    await runSequential(model, batches, three, [], { runBytes: 1 << 30 });
    const shared = await model.runLayerStacked(0, stack, {}, tables, model.weights, true, 1 << 30);
    expect(three.runs.length).toBe(3 * model.config.layers);
    expect(shared!.data).toEqual(single!.data);
    for (const [m, h] of one.hessians) {
      expect(three.hessians.get(m)!.n, m).toBe(h.n);
      expect(relativeError(three.hessians.get(m)!.sum, h.sum), m).toBeLessThan(1e-6);
    }
    for (const [name, r] of one.ranges) expect(relativeError(three.ranges.get(name)!, r), name).toBeLessThan(1e-6);
  });
});

describe('stackBatches with batches made on first read', () => {
  it('fills the stack through storeInto, never making a batch array of its own', () => {
    const hidden = 2;
    let made = 0;
    const lazy = (values: number[], batch: number, seq: number) => ({
      batch,
      seq,
      get data(): Float32Array {
        throw new Error('float32 values read');
      },
      stored: {
        dtype: 'bfloat16' as const,
        get data(): Uint16Array {
          made++;
          return Uint16Array.from(values);
        },
      },
      storeInto: (to: Uint16Array, at: number): void => to.set(values, at),
    });
    const s = stackBatches([lazy([1, 2, 3, 4], 1, 2), lazy([5, 6], 1, 1)], hidden, 'bfloat16');
    expect(made).toBe(0);
    expect(s.rows).toBe(2);
    // The shorter batch's slot is padded with zeros.
    expect(Array.from(s.data)).toEqual([1, 2, 3, 4, 5, 6, 0, 0]);
  });
});
