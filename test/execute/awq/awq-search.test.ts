/**
 * AWQ's grid and search in pieces: llm-compressor's grid points for each
 * `duo_scaling`, compressed-tensors' lowest common ancestor, the scale
 * normalisation, and the ways candidates reach the search graph giving the
 * same losses and choices (pseudo-quantized in the search graph, with the
 * grid looped inside it or not, in a graph of their own, or on the host),
 * for dense, MoE and MLA parents.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { gridPoints, gridScales } from '../../../src/execute/awq/awq-scales.js';
import { awqJob } from '../../../src/execute/awq/awq-job.js';
import type { LowPrecision } from '../../../src/execute/forward/precision.js';
import { ForwardModel, type TokenBatch } from '../../../src/execute/forward/executor.js';
import type { ApplyJob } from '../../../src/execute/types.js';
import { lowestCommonAncestor } from '../../../src/match/awq-mappings.js';
import { presetScheme } from '../../../src/ir/presets.js';
import { llamaWindows, modelWithTokenizer } from '../../calibrate-refs.js';
import { cwdSourceHost } from '../../../src/cli/cwd-host.js';
import { jobFromPlan } from '../../../src/execute/from-plan.js';
import { planRecipe } from '../../../src/plan/plan-recipe.js';

describe('AWQ grid', () => {
  test("llm-compressor's grid points", () => {
    const duo = gridPoints(true, 20);
    expect(duo.length).toBe(20);
    expect(duo[0]).toEqual({ ratio: 0, duo: false });
    expect(duo.slice(1).map((p) => p.ratio)).toEqual(Array.from({ length: 19 }, (_, i) => i / 18));
    expect(gridPoints(false, 20).map((p) => p.ratio)).toEqual(Array.from({ length: 20 }, (_, i) => i / 19));
    const both = gridPoints('both', 20);
    expect(both.length).toBe(20);
    expect(both.slice(0, 4)).toEqual([
      { ratio: 0, duo: false },
      { ratio: 0, duo: true },
      { ratio: 1 / 9, duo: false },
      { ratio: 1 / 9, duo: true },
    ]);
  });

  test('scales are normalised by sqrt(max · min); ratio 0 without duo is the identity', () => {
    const x = Float32Array.of(0.5, 2, 8);
    expect([...gridScales(x, null, { ratio: 0, duo: false })]).toEqual([1, 1, 1]);
    const s = gridScales(x, Float64Array.of(1, 1, 1), { ratio: 1, duo: true });
    expect(Math.max(...s) * Math.min(...s)).toBeCloseTo(1, 12);
  });

  test("compressed-tensors' lowest common ancestor", () => {
    expect(lowestCommonAncestor(['a.b.q_proj', 'a.b.k_proj'])).toBe('a.b');
    expect(lowestCommonAncestor(['a.b.o_proj'])).toBe('a.b.o_proj');
    expect(lowestCommonAncestor(['abc.x', 'ab.y'])).toBe('');
    expect(lowestCommonAncestor(['m.mlp.gate', 'm.mlp.experts.0.up_proj', 'm.mlp.experts.7.up_proj'])).toBe('m.mlp');
  });
});

/** A tiny model (the llama by default) and the job `apply` plans for AWQ + W4A16_ASYM on it (recipe written as `name`). */
async function llamaAwqJob(name: string, modelName = 'llama', quantization = '{targets: [Linear], scheme: W4A16_ASYM, ignore: [lm_head]}'): Promise<{ model: ForwardModel; job: ApplyJob }> {
  const dir = await modelWithTokenizer(modelName);
  const model = await ForwardModel.open(dir);
  const recipe = join(dir, name);
  await writeFile(recipe, `quant_stage:\n  quant_modifiers:\n    AWQModifier: {}\n    QuantizationModifier: ${quantization}\n`);
  const planned = await planRecipe(recipe, dir, { source: cwdSourceHost('/') }, 'test');
  return { model, job: jobFromPlan(planned.build!, { modelDir: dir, outDir: join(dir, 'out'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers }) };
}

/** The reference windows in batches of four. */
function windowsByFour(): TokenBatch[] {
  const w = llamaWindows();
  const batches: TokenBatch[] = [];
  for (let i = 0; i + 4 <= w.length; i += 4) batches.push(w.slice(i, i + 4).map((b) => b[0]!));
  return batches;
}

describe('AWQ search graph', () => {
  test('candidates pseudo-quantized in the graph or here give the same choices', async () => {
    const dir = await modelWithTokenizer('llama');
    const model = await ForwardModel.open(dir);
    const scheme = presetScheme('W4A16_ASYM', ['Linear'])!;
    const layers = [0, 1];
    const names = layers.flatMap((l) => ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'].map((m) => `model.layers.${l}.${m}`));
    const mappings = layers.flatMap((l) => {
      const p = `model.layers.${l}`;
      return [
        { smooth: `${p}.input_layernorm`, balance: [`${p}.self_attn.q_proj`, `${p}.self_attn.k_proj`, `${p}.self_attn.v_proj`], parent: `${p}.self_attn` },
        { smooth: `${p}.self_attn.v_proj`, balance: [`${p}.self_attn.o_proj`], parent: `${p}.self_attn.o_proj` },
        { smooth: `${p}.post_attention_layernorm`, balance: [`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`], parent: `${p}.mlp` },
        { smooth: `${p}.mlp.up_proj`, balance: [`${p}.mlp.down_proj`], parent: `${p}.mlp.down_proj` },
      ];
    });
    const job: ApplyJob = {
      modelDir: dir,
      outDir: join(dir, 'out'),
      device: 'cpu',
      groups: [{ name: 'group_0', scheme }],
      modules: names.map((name) => ({ name, group: 0 })),
      fusedExperts: [],
      ignore: [],
      kvCacheScheme: null,
      awq: { duoScaling: true, nGrid: 20, mappings },
      recipeYaml: '',
    };
    const here = await awqJob(job, model, llamaWindows(), { candidates: 'host', searchBytes: 1 << 20 });
    for (const candidates of ['graph', 'search-graph', 'search-loop'] as const) {
      const run = await awqJob(job, model, llamaWindows(), { candidates });
      for (const [i, a] of run.reports.entries()) {
        const b = here.reports[i]!;
        expect(a.best, `${candidates} ${a.smooth}`).toBe(b.best);
        // bf16 model: W·s and the qparams rounded to bf16 in the graph as here, up to float32 noise.
        for (let p = 0; p < a.losses.length; p++) expect(Math.abs(a.losses[p]! / b.losses[p]! - 1), `${candidates} ${a.smooth} ${p}`).toBeLessThan(2e-3);
      }
    }
  });

  test('a search budget too small for many grid points gives the same choices, attention inputs split into sequences or the grid looped in chunks', async () => {
    const { model, job } = await llamaAwqJob('awq-budget.yaml');
    // Batches of four windows: the cached attention inputs are [4, 32, hidden].
    const batches = windowsByFour();
    const reference = await awqJob(job, model, batches);
    for (const candidates of ['graph', 'search-loop'] as const)
      for (const searchBytes of [1 << 21, 1 << 22, 1 << 23]) {
        const run = await awqJob(job, model, batches, { searchBytes, candidates });
        for (const [i, a] of run.reports.entries()) {
          const b = reference.reports[i]!;
          expect(a.best, `${candidates} ${searchBytes} ${a.smooth}`).toBe(b.best);
          for (let p = 0; p < a.losses.length; p++) expect(Math.abs(a.losses[p]! / b.losses[p]! - 1), `${candidates} ${searchBytes} ${a.smooth} ${p}`).toBeLessThan(1e-5);
        }
      }
  });

  // Every architecture the stacked search serves: llama, mistral, qwen2 (attention biases), qwen3 (q/k norms).
  for (const name of ['llama', 'mistral', 'qwen2', 'qwen3']) {
    test(`${name}: the search on the layer input stack (pass A looped, returning only the activation sums) gives the cached search's means, losses and choices`, async () => {
      // Groups of 32: the tiny models are 64 wide, and the stacked search needs candidates made in the graph.
      const { model, job } = await llamaAwqJob('awq-stack.yaml', name, `{config_groups: {group_0: {targets: [Linear], weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}}}, ignore: [lm_head]}`);
      // Slots of one window and of four (the stack's rows), and budgets that loop the grid in chunks: the largest with
      // every point's candidates made up front and laid out by iteration (the attention mapping: 3 iterations of 7
      // points), the smallest too small to make them up front.
      const w = llamaWindows();
      const fours = windowsByFour();
      model.loopLayers = true;
      try {
        for (const [batches, searchBytes] of [[w, undefined], [fours, 1 << 24], [fours, 1 << 22], [fours, 1 << 20]] as const) {
          const cached = await awqJob(job, model, batches, { candidates: 'search-loop', recompute: false, searchBytes });
          // The default where layer passes run stacked (CUDA), forced here on the CPU.
          const stacked = await awqJob(job, model, batches, { candidates: 'search-loop', searchBytes });
          expect(stacked.stacked).toBe(true);
          expect(cached.stacked).toBe(false);
          expect(stacked.reports.length).toBe(cached.reports.length);
          // One search run per mapping (the whole stack in one run, the grid looped inside it), or one a layer for the
          // mappings whose candidates are made up front, searched together: the same bits.
          const apart = await awqJob(job, model, batches, { candidates: 'search-loop', searchBytes, joint: false });
          expect(apart.profile.search.runs).toBe(apart.reports.length);
          expect(stacked.profile.search.runs).toBeLessThanOrEqual(apart.profile.search.runs);
          if (searchBytes === undefined) expect(stacked.profile.search.runs).toBeLessThan(apart.profile.search.runs);
          expect(stacked.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]])).toEqual(apart.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]]));
          for (const [i, a] of stacked.reports.entries()) {
            const b = cached.reports[i]!;
            expect(a.smooth).toBe(b.smooth);
            expect(a.tokens).toBe(b.tokens);
            for (let c = 0; c < a.xMean.length; c++) expect(Math.abs(a.xMean[c]! / b.xMean[c]! - 1), `${a.smooth} x_mean ${c}`).toBeLessThan(1e-6);
            expect(a.best, a.smooth).toBe(b.best);
            // Float order only: the cached inputs come from merged runs of many windows, the rebuilt ones from one slot at a
            // time (other MatMul shapes), and each run's squared errors are one float32 sum. A loss is the square of a small
            // difference of large outputs, so their ~1e-7 noise can move it by up to ~5e-3 (qwen3's q/k norms: the cached search
            // itself moves that much between merged runs and batch-by-batch runs).
            for (let p = 0; p < a.losses.length; p++) expect(Math.abs(a.losses[p]! / b.losses[p]! - 1), `${a.smooth} ${p}`).toBeLessThan(1e-2);
          }
        }
      } finally {
        model.loopLayers = false;
      }
    });
  }

  test('a bf16 model carries bf16 stacks between its layers: the same search, the same scales', async () => {
    const { model, job } = await llamaAwqJob('awq-bf16-stack.yaml', 'llama', `{config_groups: {group_0: {targets: [Linear], weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}}}, ignore: [lm_head]}`);
    model.loopLayers = true;
    model.usePrecision('bf16');
    try {
      const batches = windowsByFour();
      model.compactStacks = false;
      const wide = await awqJob(job, model, batches, { candidates: 'search-loop' });
      model.compactStacks = true;
      expect(model.stackDtype()).toBe('bfloat16');
      const compact = await awqJob(job, model, batches, { candidates: 'search-loop' });
      expect(compact.stacked).toBe(true);
      expect(compact.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]])).toEqual(wide.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]]));
    } finally {
      model.loopLayers = false;
      model.usePrecision('fp32');
    }
  });

  // Where the layer passes feed their weights (CUDA), the searches do too: every layer's search of a mapping is one graph.
  test.each([
    ['llama', true],
    ['qwen3_moe', false],
    ['mixtral', false],
  ] as const)('%s (on the layer input stack: %s): searches that feed their weights share one session per mapping across layers, with the same losses', async (name, stacked) => {
    const { model, job } = await llamaAwqJob('awq-fed.yaml', name, `{config_groups: {group_0: {targets: [Linear], weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}}}, ignore: [lm_head, "re:.*mlp.gate$"]}`);
    model.loopLayers = stacked;
    // As on CUDA, constants neither folded nor prepacked: the CPU's products of prepacked constant weights sum in another order.
    model.foldConstants = false;
    try {
      // One search at a time (a layer's mappings in one run: below).
      model.feedWeights = false;
      const constants = await awqJob(job, model, windowsByFour(), { candidates: 'search-loop', joint: false });
      model.feedWeights = true;
      const fed = await awqJob(job, model, windowsByFour(), { candidates: 'search-loop', joint: false });
      expect(fed.stacked).toBe(stacked);
      const layers = new Set(fed.reports.map((r) => /layers\.(\d+)\./.exec(r.smooth)![1])).size;
      expect(layers).toBeGreaterThan(1);
      // One session per mapping of a layer, not per mapping and layer.
      expect(constants.profile.search.sessions).toBe(constants.reports.length);
      expect(fed.profile.search.sessions).toBeLessThanOrEqual(fed.reports.length / layers);
      expect(fed.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]])).toEqual(constants.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]]));
      if (!stacked) return;
      // A layer's mappings in one run: one session for every layer where the weights are fed, one a layer where they are constants.
      const joint = await awqJob(job, model, windowsByFour(), { candidates: 'search-loop' });
      model.feedWeights = false;
      const jointConstants = await awqJob(job, model, windowsByFour(), { candidates: 'search-loop' });
      expect(joint.profile.search.sessions).toBe(1);
      expect(jointConstants.profile.search.sessions).toBe(layers);
      for (const run of [joint, jointConstants]) expect(run.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]])).toEqual(constants.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]]));
    } finally {
      model.loopLayers = false;
      model.feedWeights = false;
      model.foldConstants = true;
    }
  });

  // onnxruntime's CPU float16 kernels are not CUDA's, so these check structure and rewrites: the graphs the CUDA search
  // builds (native low dtype, attention as the fused kernel, narrowed) run, and narrowing moves no value.
  test.each([
    ['llama', true],
    ['qwen3_moe', false],
  ] as const)("the CUDA graphs' layout on the CPU: a native float16 search of %s (on the layer input stack: %s), narrowed or not, the same losses", async (name, stacked) => {
    const { model, job } = await llamaAwqJob('awq-native.yaml', name, `{config_groups: {group_0: {targets: [Linear], weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}}}, ignore: [lm_head, "re:.*mlp.gate$"]}`);
    model.loopLayers = stacked;
    try {
      const run = async (low: LowPrecision) => {
        model.precision = { requested: 'bf16', runs: 'float16', low };
        return awqJob(job, model, windowsByFour(), { candidates: 'search-loop' });
      };
      const wide = await run({ dtype: 'float16', native: true, fusedAttention: true });
      // `exact`: the CPU has no float16 arithmetic kernels (CUDA narrows `all`, its bf16 Add/Sub/Mul checked by precision-parity).
      const narrowed = await run({ dtype: 'float16', native: true, narrow: 'exact', fusedAttention: true });
      expect(narrowed.stacked).toBe(stacked);
      expect(narrowed.reports.map((r) => [r.smooth, r.best, r.losses])).toEqual(wide.reports.map((r) => [r.smooth, r.best, r.losses]));
      if (!stacked) return;
      // Candidates made once a run are stored in the low dtype and read where they lie when the grid is one iteration a
      // slot; tighter budgets split the grid, gathered by the loop from the candidates made up front, or with the chunks
      // of points as the outer loop (10 MB and 2 MB give both). The same losses, bit for bit.
      expect(narrowed.reports.every((r) => r.chunk === 20)).toBe(true);
      // A layer's mappings searched in one run (llama's read no weight an earlier one smooths) or one run each: the same
      // losses and choices, bit for bit, and a third of the runs.
      const apart = await awqJob(job, model, windowsByFour(), { candidates: 'search-loop', joint: false });
      expect(narrowed.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]])).toEqual(apart.reports.map((r) => [r.smooth, r.best, r.losses, [...r.scales]]));
      const layers = new Set(narrowed.reports.map((r) => /layers\.(\d+)\./.exec(r.smooth)![1])).size;
      expect(apart.profile.search.runs).toBe(narrowed.reports.length);
      expect(narrowed.profile.search.runs).toBe(layers);
      for (const searchBytes of [10_000_000, 2_000_000]) {
        model.precision = { requested: 'bf16', runs: 'float16', low: { dtype: 'float16', native: true, narrow: 'exact', fusedAttention: true } };
        const tight = await awqJob(job, model, windowsByFour(), { candidates: 'search-loop', searchBytes });
        expect(tight.reports.some((r) => r.chunk < 20), `${searchBytes}`).toBe(true);
        expect(tight.reports.map((r) => [r.smooth, r.best, r.losses]), `${searchBytes}`).toEqual(narrowed.reports.map((r) => [r.smooth, r.best, r.losses]));
      }
      // Against the emulated search (float32 ops, each result rounded): the fused kernel and the native MatMuls sum in
      // other orders, so a loss moves by a few float16 steps, and a choice that differs is a near tie.
      const emulated = await run({ dtype: 'float16', native: false });
      for (const [i, a] of narrowed.reports.entries()) {
        const e = emulated.reports[i]!;
        for (let p = 0; p < a.losses.length; p++) expect(Math.abs(a.losses[p]! / e.losses[p]! - 1), `${a.smooth} ${p}`).toBeLessThan(2e-2);
        expect(Math.abs(e.losses[a.best]! / e.losses[e.best]! - 1), a.smooth).toBeLessThan(5e-3);
      }
    } finally {
      model.loopLayers = false;
      model.usePrecision('fp32');
    }
  });

  // MLA attention and the sigmoid-routed MoE block with shared experts (glm4_moe_lite), the softmax block without the router balanced
  // (mixtral), sink attention and the biased clamped-SwiGLU experts (gpt_oss), sparsemixer routing (phimoe).
  for (const name of ['glm4_moe_lite', 'mixtral', 'gpt_oss', 'phimoe']) {
    test(`${name}: MoE and MLA parents give the same choices whichever way candidates come`, async () => {
      const dir = await modelWithTokenizer(name);
      const cwd = await mkdtemp(join(tmpdir(), 'quantc-awq-search-'));
      const group = '{targets: [Linear], weights: {num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}}';
      await writeFile(join(cwd, 'recipe.yaml'), `quant_stage:\n  quant_modifiers:\n    AWQModifier: {}\n    QuantizationModifier:\n      ignore: [lm_head, "re:.*mlp.gate$", "re:.*mlp.router$"]\n      config_groups: {group_0: ${group}}\n`);
      const planned = await planRecipe(join(cwd, 'recipe.yaml'), dir, { source: cwdSourceHost('/') }, 'test');
      const job = jobFromPlan(planned.build!, { modelDir: dir, outDir: join(cwd, 'out'), device: 'cpu', recipeYaml: '', moe: planned.ir!.moe, modifiers: planned.ir!.modifiers });
      const model = await ForwardModel.open(dir);
      const here = await awqJob(job, model, llamaWindows(), { candidates: 'host', searchBytes: 1 << 20 });
      expect(here.reports.some((r) => r.parent.endsWith('.mlp') && r.balance.length > 2)).toBe(true);
      for (const candidates of ['graph', 'search-graph', 'search-loop'] as const) {
        const run = await awqJob(job, model, llamaWindows(), { candidates });
        expect(run.reports.length).toBe(here.reports.length);
        for (const [i, a] of run.reports.entries()) {
          const b = here.reports[i]!;
          expect(a.best, `${candidates} ${a.smooth}`).toBe(b.best);
          for (let p = 0; p < a.losses.length; p++) expect(Math.abs(a.losses[p]! / b.losses[p]! - 1), `${candidates} ${a.smooth} ${p}`).toBeLessThan(2e-3);
        }
      }
    });
  }
});
