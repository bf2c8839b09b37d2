/**
 * Lowers a recipe IR and a model into an ordered plan that mirrors
 * llm-compressor's oneshot lifecycle: load, MoE calibration rewrites, per
 * modifier the schemes it attaches (and what `ignore` removes), the
 * calibration pipeline, the quantization algorithm, restore, save.
 *
 * Pure: everything it needs is in its arguments, and equal inputs give an
 * equal plan (module order is `named_modules()` order throughout).
 */
import { error, warning, type Diagnostic, type Result } from '../diagnostics.js';
import type { ModifierIR, QuantizationScheme, RecipeIR } from '../ir/types.js';
import { kvCacheModules } from '../match/attention.js';
import { checkFusedGroups } from '../match/fused-groups.js';
import { checkGroupSizeDivisibility } from '../match/group-size.js';
import { compressModules } from './compress-modules.js';
import { compressNames } from '../match/compress-names.js';
import { mappingLines, MappingError, resolveSmoothQuant, type ResolvedSmoothQuant } from '../match/smoothquant-mappings.js';
import { AWQ_DYNAMIC_CLASSES, AWQ_MAPPINGS, awqMappingLines, AwqMappingError, resolveAwq, type ResolvedAwq } from '../match/awq-mappings.js';
import { runMatchLints } from '../match/lints/index.js';
import { assignSchemes, type ModuleSchemes, type SchemeAssignment, type SchemeGroup } from '../match/match.js';
import { compilePatterns, type CompiledPattern } from '../match/pattern.js';
import type { LoadedModel } from '../model/load.js';
import { classOf, type ModuleTree, type ParamInfo } from '../model/module-tree.js';
import { resolveMoeRewrites, type MoeResolution } from '../moe/resolve.js';
import { applyRewrites, rewriteSummaries } from '../moe/unpack.js';
import { lineColAt, type Span } from '../source.js';
import { dtypeBytes, formatBytes, formatInt, numel, quantizedWeightBytes } from './estimate.js';
import { hashValue } from './hash.js';
import { gptqCost } from './gptq-cost.js';
import { CALIBRATION_ASSUMPTIONS, calibrationSubgraphs, type Subgraph } from './pipeline.js';
import { modelFormat, savedFormat } from './saved-format.js';
import {
  PLAN_FORMAT_VERSION,
  type Plan,
  type PlanDiagnostic,
  type PlanIgnored,
  type PlanQuantize,
  type PlanScheme,
  type PlanSpan,
  type PlanStep,
} from './types.js';

/** What the planner needs. */
export interface PlanRequest {
  readonly recipePath: string;
  readonly ir: RecipeIR;
  /** Source texts by path (for spans in the plan JSON). */
  readonly sources: ReadonlyMap<string, string>;
  /** Diagnostics already reported for the recipe (warnings), carried into the plan. */
  readonly recipeDiagnostics?: readonly Diagnostic[];
  readonly model: LoadedModel;
  /** The `--model` argument as given. */
  readonly modelId: string;
  readonly quantcVersion: string;
}

/** Per quantization modifier: the patterns and what compressed-tensors would do with them. */
export interface ModifierMatch {
  readonly modifier: ModifierIR;
  readonly groups: readonly SchemeGroup[];
  readonly ignore: readonly CompiledPattern[];
  readonly assignment: SchemeAssignment;
  /** Modules that receive the kv-cache scheme (empty without one). */
  readonly kvCache: readonly number[];
  /**
   * Modules this modifier gives its empty scheme: a modifier with a config
   * (`has_config`: a kv_cache_scheme, an ignore list or targets of its own)
   * but no quantization arguments resolves to one group of its targets
   * without arguments, and compressed-tensors attaches that to them, so
   * the schemes earlier modifiers attached are overwritten with nothing.
   */
  readonly resets: readonly number[];
}

/** The plan plus the intermediate results `explain` and `diff` read. */
export interface PlanBuild {
  readonly plan: Plan;
  /** The tree as loaded. */
  readonly original: ModuleTree;
  /** The tree after calibration rewrites: every module name in the plan refers to it. */
  readonly tree: ModuleTree;
  readonly moe: MoeResolution;
  readonly matches: readonly ModifierMatch[];
  /** Final scheme key per module index of `tree` (absent: not quantized). */
  readonly finalScheme: ReadonlyMap<number, { readonly key: string; readonly modifier: number }>;
  readonly diagnostics: readonly Diagnostic[];
}

const QUANTIZATION_MIXINS = new Set(['QuantizationModifier', 'GPTQModifier', 'AutoRoundModifier']);

/** Lowers a recipe and a model into a plan. */
export function lowerToPlan(request: PlanRequest): Result<PlanBuild> {
  const { ir, model } = request;
  const diagnostics: Diagnostic[] = [...(request.recipeDiagnostics ?? [])];
  const original = model.tree;

  const moeResult = resolveMoeRewrites(original, ir.moe);
  diagnostics.push(...moeResult.diagnostics);
  const resolution = moeResult.value;
  const tree = resolution.rewrites.length > 0 ? applyRewrites(original, resolution) : original;

  const matches: ModifierMatch[] = [];
  const finalScheme = new Map<number, { key: string; modifier: number; scheme: QuantizationScheme; group: string }>();
  const smoothing = new Map<number, ResolvedSmoothQuant>();
  for (const modifier of ir.modifiers) {
    if (modifier.type === 'SmoothQuantModifier') {
      const resolved = smoothQuantMappings(tree, modifier, diagnostics);
      if (resolved) smoothing.set(modifier.index, resolved);
    }
    if (!modifier.quantization || !QUANTIZATION_MIXINS.has(modifier.type)) continue;
    const match = matchModifier(tree, modifier, diagnostics);
    matches.push(match);
    // One shared entry per config group: 70k modules of a fine-grained MoE
    // model need no 70k objects. A modifier initialized later overwrites
    // schemes on overlapping modules.
    const entries = match.groups.map((g) => ({ key: '', modifier: modifier.index, scheme: g.scheme, group: g.name }));
    const reset = match.resets.filter((m) => finalScheme.delete(m));
    if (reset.length > 0) {
      const names = reset.slice(0, 3).map((m) => tree.names[m]!);
      diagnostics.push(
        warning(
          'quantization-scheme-reset',
          `${modifier.type} has no quantization arguments of its own, yet a config (${modifier.args.kv_cache_scheme ? 'a kv_cache_scheme' : 'targets or an ignore list'}), so compressed-tensors attaches its empty scheme to every module its targets match: ${reset.length} module${reset.length === 1 ? '' : 's'} an earlier modifier gave a scheme (${names.join(', ')}${reset.length > 3 ? ', …' : ''}) ${reset.length === 1 ? 'is' : 'are'} left unquantized, as llm-compressor leaves them. Give it targets that match nothing (targets = []), or move its settings into the earlier modifier.`,
          modifier.origin,
        ),
      );
    }
    for (const list of [match.assignment.quantized, match.assignment.attention]) {
      for (let k = 0; k < list.modules.length; k++) finalScheme.set(list.modules[k]!, entries[list.groups[k]!]!);
    }
  }
  if (ir.modifiers.some((m) => QUANTIZATION_MIXINS.has(m.type)) && finalScheme.size === 0 && matches.every((m) => m.kvCache.length === 0)) {
    diagnostics.push(error('plan-nothing-quantized', 'No module of the model receives a quantization scheme: the recipe would run and change nothing.'));
  }

  // AWQ skips mappings whose layers no quantization modifier targets, so it resolves once every scheme is known.
  const awq = new Map<number, ResolvedAwq>();
  for (const modifier of ir.modifiers) {
    if (modifier.type !== 'AWQModifier') continue;
    const resolved = awqMappings(tree, modifier, finalScheme, diagnostics);
    if (resolved) awq.set(modifier.index, resolved);
  }

  const schemes = nameSchemes(finalScheme);
  const plan = assemblePlan(request, tree, resolution, matches, finalScheme, schemes, diagnostics, smoothing, awq);
  return {
    value: { plan, original, tree, moe: resolution, matches, finalScheme, diagnostics },
    diagnostics,
  };
}

/**
 * A SmoothQuantModifier's mappings against the tree, with the diagnostics
 * llm-compressor would only log: default mappings for a class its registry
 * lacks (warning), mappings that resolve to nothing (error), mappings it
 * skips (warning).
 */
function smoothQuantMappings(tree: ModuleTree, modifier: ModifierIR, diagnostics: Diagnostic[]): ResolvedSmoothQuant | null {
  let resolved: ResolvedSmoothQuant;
  try {
    resolved = resolveSmoothQuant(tree, modifier.args);
  } catch (e) {
    if (!(e instanceof MappingError)) throw e;
    diagnostics.push(error('smoothquant-mapping-invalid', `${e.message}.`, modifier.origin));
    return null;
  }
  if (resolved.source === 'default') {
    diagnostics.push(
      warning(
        'smoothquant-default-mappings',
        `llm-compressor has no SmoothQuant mappings for "${resolved.architecture}" and uses its default ones (q/k/v_proj ← input_layernorm, gate/up_proj ← post_attention_layernorm); check that every reader of each norm is a balance layer, or give the modifier its own mappings.`,
        modifier.origin,
      ),
    );
  }
  if (resolved.mappings.length === 0) diagnostics.push(error('smoothquant-no-mappings', 'SmoothQuantModifier resolves no mapping on this model: it would smooth nothing.', modifier.origin));
  const byReason = new Map<string, string[]>();
  for (const skip of resolved.skipped) byReason.set(skip.reason, [...(byReason.get(skip.reason) ?? []), skip.smooth]);
  for (const [reason, layers] of byReason) {
    const what = layers.length === 1 ? `"${layers[0]}"` : `${layers.length} smooth layers (${compressNames(layers).map((g) => g.pattern).join(', ')})`;
    diagnostics.push(warning('smoothquant-mapping-skipped', `SmoothQuant skips ${what}: ${reason}.`, modifier.origin));
  }
  return resolved;
}

/**
 * An AWQModifier's mappings against the tree, with what llm-compressor only
 * logs as diagnostics: default mappings for a class its registry lacks, a
 * mapping pattern that matches nothing, mappings it skips and why, balance
 * layers left unquantized; and an error when nothing resolves.
 */
function awqMappings(tree: ModuleTree, modifier: ModifierIR, finalScheme: ReadonlyMap<number, unknown>, diagnostics: Diagnostic[]): ResolvedAwq | null {
  const quantized = new Set([...finalScheme.keys()].map((i) => tree.names[i]!));
  const architecture = classOf(tree, 0).name;
  if (!Array.isArray(modifier.args.mappings) && AWQ_MAPPINGS[architecture] === undefined && !AWQ_DYNAMIC_CLASSES.has(architecture)) {
    diagnostics.push(
      warning(
        'awq-default-mappings',
        `llm-compressor has no AWQ mappings for "${architecture}" and uses its default ones (input_layernorm → q/k/v_proj, v_proj → o_proj, post_attention_layernorm → gate/up_proj, up_proj → down_proj); check that every reader of each smooth layer is a balance layer, or give the AWQModifier its own mappings.`,
        modifier.origin,
      ),
    );
  }
  let resolved: ResolvedAwq;
  try {
    resolved = resolveAwq(tree, modifier.args, (name) => quantized.has(name));
  } catch (e) {
    if (!(e instanceof AwqMappingError)) throw e;
    diagnostics.push(error('awq-mapping-invalid', `${e.message}; llm-compressor stops there too. Give the AWQModifier mappings that fit "${architecture}".`, modifier.origin));
    return null;
  }
  for (const pattern of resolved.unmatched) {
    diagnostics.push(warning('awq-mapping-unmatched', `AWQ mapping pattern "${pattern}" matches no module of this model, so the mappings it belongs to resolve to nothing there.`, modifier.origin));
  }
  if (resolved.mappings.length === 0) {
    diagnostics.push(
      error(
        'awq-no-mappings',
        `AWQModifier resolves no mapping on "${resolved.architecture}" (${resolved.source === 'recipe' ? "the recipe's mappings" : resolved.source === 'registry' ? "llm-compressor's mappings for it" : "llm-compressor's default mappings"} match no quantized smooth/balance layers): it would smooth nothing. Give the AWQModifier its own mappings: [{smooth_layer: "re:…", balance_layers: ["re:…"]}].`,
        modifier.origin,
      ),
    );
  }
  const byReason = new Map<string, string[]>();
  for (const skip of resolved.skipped) byReason.set(skip.reason, [...(byReason.get(skip.reason) ?? []), skip.smooth]);
  for (const [reason, layers] of byReason) {
    const what = layers.length === 1 ? `"${layers[0]}"` : `${layers.length} smooth layers (${compressNames(layers).map((g) => g.pattern).join(', ')})`;
    diagnostics.push(warning('awq-mapping-skipped', `AWQ skips ${what}: ${reason}.`, modifier.origin));
  }
  const unquantized = [...new Set(resolved.mappings.flatMap((m) => m.balance.filter((b) => !quantized.has(b))))];
  if (unquantized.length > 0) {
    const what = unquantized.length === 1 ? `"${unquantized[0]}"` : `${unquantized.length} modules (${compressNames(unquantized).map((g) => g.pattern).join(', ')})`;
    diagnostics.push(
      warning(
        'awq-balance-unquantized',
        `${what} ${unquantized.length === 1 ? 'is a balance layer' : 'are balance layers'} of AWQ but no quantization modifier targets ${unquantized.length === 1 ? 'it' : 'them'}: the grid search leaves ${unquantized.length === 1 ? 'it' : 'them'} unquantized and only scales ${unquantized.length === 1 ? 'its' : 'their'} input columns.`,
        modifier.origin,
      ),
    );
  }
  return resolved;
}

function matchModifier(tree: ModuleTree, modifier: ModifierIR, diagnostics: Diagnostic[]): ModifierMatch {
  const q = modifier.quantization!;
  const groups: SchemeGroup[] = [];
  for (const g of q.groups) {
    const compiled = compilePatterns(g.targets);
    diagnostics.push(...compiled.diagnostics);
    groups.push({ name: g.name, targets: compiled.value, scheme: g.scheme, origin: g.origin });
  }
  const ignoreCompiled = compilePatterns(q.ignore);
  diagnostics.push(...ignoreCompiled.diagnostics);
  // A modifier whose groups carry no quantization args (e.g. a bare
  // GPTQModifier after a QuantizationModifier) attaches nothing new: it
  // reuses the schemes already attached.
  const attaches = groups.some((g) => g.scheme.weights || g.scheme.input_activations || g.scheme.output_activations);
  const assignment = assignSchemes(tree, attaches ? groups : [], ignoreCompiled.value);
  // Configured without arguments: the empty group is attached all the same (llm-compressor's `initialize_quantization`).
  const emptied = !attaches && hasConfig(modifier.args) ? assignSchemes(tree, groups, ignoreCompiled.value) : null;
  const resets = emptied ? [...emptied.quantized.modules, ...emptied.attention.modules] : [];
  if (attaches) {
    diagnostics.push(
      ...runMatchLints(tree, groups, ignoreCompiled.value, assignment),
      ...checkGroupSizeDivisibility(tree, assignment, groups, modifier.args.bypass_divisibility_checks === true),
      ...checkFusedGroups(tree, assignment, groups, ignoreCompiled.value),
    );
  }
  const kvCache = q.kvCacheScheme ? kvCacheModules(tree).modules : [];
  if (q.kvCacheScheme && kvCache.length === 0) {
    diagnostics.push(
      warning(
        'kv-cache-no-attention',
        `The kv_cache_scheme of ${modifier.type} applies to no module: the model has no attention module with k_proj/v_proj that compressed-tensors would calibrate.`,
        modifier.origin,
      ),
    );
  }
  return { modifier, groups, ignore: ignoreCompiled.value, assignment, kvCache, resets };
}

/**
 * llm-compressor's `QuantizationMixin.has_config`: the modifier names
 * config groups, a scheme, a kv-cache scheme, an ignore list or targets
 * other than the default `["Linear"]`.
 */
function hasConfig(args: Readonly<Record<string, unknown>>): boolean {
  const list = (v: unknown): unknown[] | null => (v === undefined || v === null ? null : Array.isArray(v) ? v : [v]);
  const targets = list(args.targets);
  const ignore = list(args.ignore);
  return !(
    (args.config_groups === undefined || args.config_groups === null) &&
    (targets === null || (targets.length === 1 && targets[0] === 'Linear')) &&
    (ignore === null || ignore.length === 0) &&
    (args.scheme === undefined || args.scheme === null) &&
    (args.kv_cache_scheme === undefined || args.kv_cache_scheme === null)
  );
}

/**
 * Names the distinct schemes as compressed-tensors names config groups when
 * it saves: `group_0…` in order of the first module that carries each.
 */
function nameSchemes(
  finalScheme: Map<number, { key: string; modifier: number; scheme: QuantizationScheme; group: string }>,
): Map<string, PlanScheme> {
  const byJson = new Map<string, string>();
  const byObject = new Map<QuantizationScheme, string>();
  const schemes = new Map<string, PlanScheme>();
  const ordered = [...finalScheme.keys()].sort((a, b) => a - b);
  for (const m of ordered) {
    const entry = finalScheme.get(m)!;
    let key = byObject.get(entry.scheme);
    if (key !== undefined) {
      entry.key = key;
      continue;
    }
    const json = JSON.stringify(entry.scheme);
    key = byJson.get(json);
    if (key === undefined) {
      key = `group_${byJson.size}`;
      byJson.set(json, key);
      schemes.set(key, { ...entry.scheme, preset: null, savedFormat: savedFormat(entry.scheme), modifier: entry.modifier, group: entry.group });
    }
    byObject.set(entry.scheme, key);
    entry.key = key;
  }
  return schemes;
}

function assemblePlan(
  request: PlanRequest,
  tree: ModuleTree,
  resolution: MoeResolution,
  matches: readonly ModifierMatch[],
  finalScheme: Map<number, { key: string; modifier: number; scheme: QuantizationScheme; group: string }>,
  schemes: Map<string, PlanScheme>,
  diagnostics: Diagnostic[],
  smoothing: ReadonlyMap<number, ResolvedSmoothQuant>,
  awq: ReadonlyMap<number, ResolvedAwq>,
): Plan {
  const { ir, model, sources } = request;
  const original = model.tree;
  const presetOf = presetsByGroup(ir);
  for (const [key, s] of schemes) schemes.set(key, { ...s, preset: presetOf.get(`${s.modifier}/${s.group}`) ?? null });

  const quantize: PlanQuantize[] = [...finalScheme.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([m, e]) => ({ module: tree.names[m]!, scheme: e.key }));
  const kvModules = new Set(matches.flatMap((m) => m.kvCache));
  const ignored = ignoredModules(tree, matches, finalScheme);

  const sizes = modelSizes(original);
  const after = sizesAfter(tree, finalScheme, schemes, sizes.bytes);
  const subgraphs = calibrationSubgraphs(tree);
  const perModifier = ir.modifiers.map((m) => ({
    modifier: m.index,
    type: m.type,
    pipeline: (m.requiresCalibrationData ? 'sequential' : 'datafree') as 'sequential' | 'datafree',
  }));

  const steps: PlanStep[] = [];
  const push = (s: Omit<PlanStep, 'index'>) => steps.push({ index: steps.length + 1, ...s });
  const dtype = dominantDtype(original);
  push({
    action: 'load',
    title: `Load ${request.modelId}: ${formatInt(original.names.length)} modules, ${formatInt(sizes.params)} parameters (${dtype})`,
    details: { source: model.source.kind, ...(model.checkpoint ? { checkpoint: model.checkpoint.summary } : {}) },
    estimate: { params: sizes.params, bytesBefore: sizes.bytes },
  });
  for (const group of rewriteGroups(resolution)) {
    push({
      action: 'rewrite',
      title: group.title,
      modules: compressNames(group.modules).map((g) => g.pattern),
      count: group.modules.length,
      details: group.details,
    });
  }
  const summaries = rewriteSummaries(resolution);

  for (const modifier of ir.modifiers) {
    const match = matches.find((m) => m.modifier.index === modifier.index);
    const where = `${modifier.type} (stage "${modifier.stage}")`;
    if (match) {
      const attached = [...rows(match.assignment.quantized), ...rows(match.assignment.attention)];
      for (let gi = 0; gi < match.groups.length; gi++) {
        const inGroup = attached.filter((a) => a.group === gi);
        const mods = inGroup.map((a) => a.module);
        if (mods.length === 0) continue;
        const group = match.groups[gi]!;
        const preset = presetOf.get(`${modifier.index}/${group.name}`);
        push({
          action: 'attach',
          modifier: modifier.index,
          title: `${where}: attach ${preset ?? group.name} to ${formatInt(mods.length)} module${mods.length === 1 ? '' : 's'}`,
          modules: compressModules(tree, mods, resolution),
          count: mods.length,
          details: { group: group.name, preset: preset ?? null, targets: group.targets.map((t) => t.text) },
          ...reasonOfStep(match.assignment, inGroup, sources),
        });
      }
      if (match.kvCache.length > 0) {
        push({
          action: 'attach',
          modifier: modifier.index,
          title: `${where}: attach kv_cache_scheme (k_scale, v_scale) to ${formatInt(match.kvCache.length)} attention modules`,
          modules: compressNames(match.kvCache.map((m) => tree.names[m]!)).map((g) => g.pattern),
          count: match.kvCache.length,
        });
      }
      const skipped = rows(match.assignment.skipped);
      if (skipped.length > 0) {
        push({
          action: 'attach',
          modifier: modifier.index,
          title: `${where}: ${formatInt(skipped.length)} matched modules receive no scheme (not Linear, Embedding or attention)`,
          modules: compressNames(skipped.map((s) => tree.names[s.module]!), (i) => classOf(tree, skipped[i]!.module).name).map((g) => g.pattern),
          count: skipped.length,
          details: { classes: [...new Set(skipped.map((s) => classOf(tree, s.module).name))] },
        });
      }
    } else {
      const smooth = smoothing.get(modifier.index);
      const scaled = awq.get(modifier.index);
      push({
        action: 'transform',
        modifier: modifier.index,
        title: transformTitle(modifier),
        ...(smooth ? { modules: mappingLines(smooth.mappings), count: smooth.mappings.length } : {}),
        ...(scaled
          ? {
              modules: [
                ...awqMappingLines(scaled.mappings),
                ...[...new Set(scaled.skipped.map((s) => s.reason))].flatMap((reason) => awqMappingLines(scaled.skipped.filter((s) => s.reason === reason)).map((l) => `skipped: ${l} (${reason})`)),
              ],
              count: scaled.mappings.length,
            }
          : {}),
        details: {
          args: modifier.args,
          ...(smooth ? { mappings: smooth.mappings, skippedMappings: smooth.skipped, mappingSource: smooth.source } : {}),
          ...(scaled ? { awqMappings: scaled.mappings, skippedMappings: scaled.skipped, mappingSource: scaled.source } : {}),
        },
      });
    }
    if (modifier.requiresCalibrationData) {
      const peak = peakSubgraph(tree, subgraphs, modifier, finalScheme);
      push({
        action: 'calibrate',
        modifier: modifier.index,
        title: `${where}: sequential pipeline over ${formatInt(subgraphs.list.length)} subgraphs (${subgraphs.targets.join(', ') || 'whole model'})${
          resolution.rewrites.length > 0 ? (ir.moe.calibrateAllExperts ? ', every expert sees every token' : ', experts see only routed tokens') : ''
        }`,
        count: subgraphs.list.length,
        details: { sequentialTargets: subgraphs.targets, largestSubgraph: peak.name },
        // Every sample's hidden states wait between two subgraphs: one subgraph's in + out per batch, halved, per sample.
        estimate: { calibrationBytes: peak.bytes, hiddenStatesBytes: (CALIBRATION_ASSUMPTIONS.samples * subgraphs.list[0]!.activationBytes) / 2 / CALIBRATION_ASSUMPTIONS.batchSize },
      });
    }
    const quantizedCount = match ? match.assignment.quantized.modules.length : 0;
    if (match && modifier.type === 'GPTQModifier') {
      // llm-compressor's GPTQ hooks Linear modules only: an Embedding it attaches a scheme to keeps uninitialised scales.
      const embeddings = Array.from(match.assignment.quantized.modules).filter((m) => classOf(tree, m).name === 'Embedding').map((m) => tree.names[m]!);
      if (embeddings.length > 0) {
        diagnostics.push(
          warning(
            'gptq-embedding-rtn',
            `GPTQ solves Linear modules only: ${embeddings.length === 1 ? `the Embedding "${embeddings[0]}" gets` : `${embeddings.length} Embedding modules (${compressNames(embeddings).map((g) => g.pattern).join(', ')}) get`} the scheme by round-to-nearest instead (llm-compressor leaves ${embeddings.length === 1 ? 'it' : 'them'} with uninitialised scales).`,
            modifier.origin,
          ),
        );
      }
    }
    if (match && quantizedCount + match.assignment.attention.modules.length > 0) {
      push({
        action: 'quantize',
        modifier: modifier.index,
        title: `${where}: ${algorithmOf(modifier)} on ${formatInt(quantizedCount)} module${quantizedCount === 1 ? '' : 's'}`,
        count: quantizedCount,
        details: {
          ...algorithmDetails(modifier),
          ...(modifier.type === 'GPTQModifier' ? { gptq: gptqCost(tree, gptqTargets(tree, match.assignment.quantized.modules), ir.moe.calibrateAllExperts) } : {}),
        },
      });
    } else if (match && modifier.type === 'GPTQModifier') {
      const reused = [...finalScheme.entries()].filter(([, e]) => e.modifier < modifier.index).length;
      push({
        action: 'quantize',
        modifier: modifier.index,
        title: `${where}: GPTQ on the ${formatInt(reused)} module${reused === 1 ? '' : 's'} earlier modifiers attached schemes to`,
        count: reused,
        details: {
          ...algorithmDetails(modifier),
          gptq: gptqCost(tree, gptqTargets(tree, [...finalScheme.entries()].filter(([, e]) => e.modifier < modifier.index).map(([m]) => m)), ir.moe.calibrateAllExperts),
        },
      });
    }
  }
  if (resolution.rewrites.length > 0) {
    push({
      action: 'restore',
      title: 'Nothing is restored: unpacked experts stay Linear modules and are saved per expert (llm-compressor main linearizes permanently)',
    });
  }
  const formats = [...schemes.values()].map((s) => s.savedFormat);
  push({
    action: 'save',
    title: `Save compressed-tensors checkpoint (${modelFormat(formats)}): ≈ ${formatBytes(after.bytes)} from ${formatBytes(sizes.bytes)}`,
    details: {
      format: modelFormat(formats),
      perScheme: Object.fromEntries([...schemes].map(([k, s]) => [k, { format: s.savedFormat, modules: quantize.filter((q) => q.scheme === k).length }])),
      kvCache: kvModules.size,
    },
    estimate: { bytesBefore: sizes.bytes, bytesAfter: after.bytes },
  });

  const planDiagnostics = diagnostics.map((d) => toPlanDiagnostic(d, sources));
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.filter((d) => d.severity === 'warning').length;
  return {
    formatVersion: PLAN_FORMAT_VERSION,
    quantc: request.quantcVersion,
    recipe: { path: request.recipePath, name: ir.name, version: ir.version, hash: hashValue(ir) },
    model: {
      id: request.modelId,
      modelType: original.modelType ?? null,
      source: model.source.kind,
      configHash: hashValue(model.config ?? { modules: original.names, classes: original.classes }),
      modules: original.names.length,
      modulesAfterRewrites: tree.names.length,
    },
    moe: {
      calibrateAllExperts: ir.moe.calibrateAllExperts,
      rewrites: summaries.map((s) => ({
        module: s.module,
        class: s.class,
        rewrite: s.rewrite,
        experts: s.experts,
        expertsModule: s.expertsModule,
        declared: s.declared,
      })),
      ...(resolution.rewrites.length > 0 && ir.modifiers.some((m) => m.requiresCalibrationData)
        ? { coverage: { minExpertTokens: ir.moe.minExpertTokens, onLowCoverage: ir.moe.onLowCoverage } }
        : {}),
    },
    pipeline: { perModifier, sequentialTargets: subgraphs.targets, subgraphs: subgraphs.list.length },
    schemes: Object.fromEntries(schemes),
    quantize,
    ignored,
    steps,
    diagnostics: planDiagnostics,
    summary: {
      rewrites: resolution.rewrites.length,
      quantized: quantize.length,
      ignored: ignored.length,
      matchedNotQuantizable: new Set(matches.flatMap((m) => rows(m.assignment.skipped).map((s) => s.module))).size,
      errors,
      warnings,
      paramsBefore: sizes.params,
      bytesBefore: sizes.bytes,
      bytesAfter: after.bytes,
      compressionRatio: after.bytes > 0 ? Math.round((sizes.bytes / after.bytes) * 100) / 100 : 1,
      requiresCalibrationData: ir.modifiers.some((m) => m.requiresCalibrationData),
    },
  };
}

/** Modules a target matched and `ignore` removed that would otherwise have received a scheme. */
function ignoredModules(
  tree: ModuleTree,
  matches: readonly ModifierMatch[],
  finalScheme: ReadonlyMap<number, unknown>,
): PlanIgnored[] {
  const out = new Map<number, PlanIgnored>();
  for (const match of matches) {
    for (const ig of match.assignment.match.ignored) {
      if (finalScheme.has(ig.module) || out.has(ig.module)) continue;
      const cls = classOf(tree, ig.module);
      if (!cls.mro.includes('Linear') && !cls.mro.includes('Embedding')) continue;
      out.set(ig.module, { module: tree.names[ig.module]!, pattern: match.ignore[ig.ignore]!.text });
    }
  }
  return [...out.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

function presetsByGroup(ir: RecipeIR): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of ir.modifiers) {
    for (const g of m.quantization?.groups ?? []) if (g.preset) out.set(`${m.index}/${g.name}`, g.preset);
  }
  return out;
}

interface RewriteGroup {
  readonly title: string;
  readonly modules: string[];
  readonly details: Record<string, unknown>;
}

/** One step per (class, rewrite, expert count) so the headline reads "46 Glm4MoeLiteMoE modules …". */
function rewriteGroups(resolution: MoeResolution): RewriteGroup[] {
  const groups = new Map<string, RewriteGroup>();
  for (const r of resolution.rewrites) {
    const key = `${r.class}/${r.rewrite}/${r.experts.count}/${r.source}`;
    let g = groups.get(key);
    if (!g) {
      const legacy = r.entry?.llmCompressor.legacy;
      const what =
        r.rewrite === 'unpack-fused-experts'
          ? `unpack ${r.experts.count} fused experts (${r.experts.class}) into Linear modules (${r.linearExpertsClass}) and route every calibration token through every expert`
          : `route every calibration token through all ${r.experts.count} experts (already Linear, nothing to unpack)`;
      g = {
        title: `calibration rewrite: ${what}`,
        modules: [],
        details: {
          class: r.class,
          rewrite: r.rewrite,
          experts: r.experts.count,
          source: r.source,
          llmCompressorMain: r.rewrite === 'unpack-fused-experts' ? r.linearExpertsClass : 'no rewrite (experts already Linear)',
          llmCompressor011: legacy ? legacy.class : 'none (0.11 skipped this class)',
        },
      };
      groups.set(key, g);
    }
    g.modules.push(r.module);
  }
  return [...groups.values()].map((g) => {
    const n = g.modules.length;
    return { ...g, title: `${formatInt(n)} ${String(g.details.class)} module${n === 1 ? ' gets' : 's get'} ${g.title}` };
  });
}

function transformTitle(m: ModifierIR): string {
  const a = m.args;
  switch (m.type) {
    case 'SmoothQuantModifier':
    case 'LogarithmicEqualizationModifier':
      return `${m.type}: smooth activations into weights (strength ${String(a.smoothing_strength ?? 0.5)}, mappings ${a.mappings ? 'from the recipe' : 'inferred from the model class'})`;
    case 'AWQModifier':
      return `AWQModifier: activation-aware scaling (n_grid ${String(a.n_grid ?? 20)}, duo_scaling ${String(a.duo_scaling ?? true)}, mappings ${a.mappings ? 'from the recipe' : 'inferred from the model class'})`;
    case 'QuIPModifier':
    case 'SpinQuantModifier':
      return `${m.type}: rotate weights (${String(a.transform_type ?? 'hadamard')}, rotations ${JSON.stringify(a.rotations ?? [])})`;
    default:
      return `${m.type}: sparsity ${String(a.sparsity ?? a.final_sparsity ?? '')}`.trim();
  }
}

function algorithmOf(m: ModifierIR): string {
  if (m.type === 'GPTQModifier') return 'GPTQ';
  if (m.type === 'AutoRoundModifier') return 'AutoRound';
  return 'round-to-nearest (observers, no data)'.replace(' (observers, no data)', m.requiresCalibrationData ? ' with calibrated activation scales' : ' (data-free)');
}

function algorithmDetails(m: ModifierIR): Record<string, unknown> {
  const pick = (keys: string[]) => Object.fromEntries(keys.filter((k) => m.args[k] !== undefined).map((k) => [k, m.args[k]]));
  if (m.type === 'GPTQModifier') return { algorithm: 'gptq', ...pick(['block_size', 'dampening_frac', 'actorder', 'offload_hessians']) };
  if (m.type === 'AutoRoundModifier') return { algorithm: 'autoround', ...pick(['iters', 'batch_size', 'lr']) };
  return { algorithm: 'rtn' };
}

/** GPTQ hooks Linear modules only (never embeddings). */
function gptqTargets(tree: ModuleTree, modules: ArrayLike<number>): number[] {
  return Array.from(modules).filter((m) => classOf(tree, m).name !== 'Embedding');
}

function modelSizes(tree: ModuleTree): { params: number; bytes: number } {
  let params = 0;
  let bytes = 0;
  for (const p of tree.params) {
    const n = numel(p.shape);
    params += n;
    bytes += n * dtypeBytes(p.dtype);
  }
  return { params, bytes };
}

function dominantDtype(tree: ModuleTree): string {
  const count = new Map<string, number>();
  for (const p of tree.params) count.set(p.dtype, (count.get(p.dtype) ?? 0) + numel(p.shape));
  return [...count.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'unknown';
}

function sizesAfter(
  tree: ModuleTree,
  finalScheme: ReadonlyMap<number, { key: string }>,
  schemes: ReadonlyMap<string, PlanScheme>,
  bytesBefore: number,
): { bytes: number } {
  let bytes = bytesBefore;
  // Unpacked experts share their param records, so the delta is computed
  // once per record and scheme rather than once per module.
  const deltas = new Map<string, Map<ParamInfo, number>>();
  for (const [m, e] of finalScheme) {
    let perParam = deltas.get(e.key);
    if (!perParam) deltas.set(e.key, (perParam = new Map()));
    const start = tree.paramStart[m]!;
    const end = tree.paramStart[m + 1]!;
    for (let p = start; p < end; p++) {
      const param = tree.params[p]!;
      if (param.name !== 'weight') continue;
      let delta = perParam.get(param);
      if (delta === undefined) {
        const scheme = schemes.get(e.key)!;
        delta = quantizedWeightBytes(param.shape, param.dtype, scheme, scheme.savedFormat) - numel(param.shape) * dtypeBytes(param.dtype);
        perParam.set(param, delta);
      }
      bytes += delta;
    }
  }
  return { bytes };
}

/**
 * Peak accelerator memory of one subgraph: its weights, GPTQ Hessians (one per
 * quantized Linear, as llm-compressor keeps them; `lm_head`'s in the last
 * subgraph), and one batch of activations.
 */
function peakSubgraph(
  tree: ModuleTree,
  subgraphs: { list: readonly Subgraph[] },
  modifier: ModifierIR,
  finalScheme: ReadonlyMap<number, unknown>,
): { name: string; bytes: number } {
  let best = { name: '', bytes: 0 };
  for (const sg of subgraphs.list) {
    let bytes = sg.paramBytes + sg.activationBytes;
    if (modifier.type === 'GPTQModifier') {
      for (const m of sg.modules) {
        if (!finalScheme.has(m) || classOf(tree, m).name === 'Embedding') continue;
        const start = tree.paramStart[m]!;
        const w = tree.params.slice(start, tree.paramStart[m + 1]!).find((p) => p.name === 'weight');
        if (w && w.shape.length === 2) bytes += w.shape[1]! * w.shape[1]! * 4;
      }
    }
    if (bytes > best.bytes) best = { name: sg.name, bytes };
  }
  return best;
}

/** The reason of an attach step: the target that decided the most of its modules (not merely the group's first target). */
function reasonOfStep(
  assignment: SchemeAssignment,
  attached: readonly { readonly target: number }[],
  sources: ReadonlyMap<string, string>,
): { reason?: { pattern: string; span?: PlanSpan } } {
  const counts = new Map<number, number>();
  for (const a of attached) counts.set(a.target, (counts.get(a.target) ?? 0) + 1);
  let best: number | undefined;
  for (const [t, n] of counts) if (best === undefined || n > counts.get(best)!) best = t;
  const pattern = best === undefined ? undefined : assignment.targets[best]?.pattern;
  return pattern ? { reason: reasonOf(pattern.text, pattern.origin, sources) } : {};
}

function reasonOf(pattern: string, origin: Span | undefined, sources: ReadonlyMap<string, string>): { pattern: string; span?: PlanSpan } {
  const span = planSpan(origin, sources);
  return span ? { pattern, span } : { pattern };
}

/** A span as file/line/column, when its source text is known. */
export function planSpan(span: Span | undefined, sources: ReadonlyMap<string, string>): PlanSpan | undefined {
  if (!span) return undefined;
  const text = sources.get(span.path);
  if (text === undefined) return { file: span.path, line: 0, column: 0 };
  const { line, column } = lineColAt(text, span.start);
  return { file: span.path, line, column };
}

function toPlanDiagnostic(d: Diagnostic, sources: ReadonlyMap<string, string>): PlanDiagnostic {
  const span = planSpan(d.span, sources);
  return { code: d.code, severity: d.severity, message: d.message, ...(span ? { span } : {}) };
}

/** One matched module and the config group that decided its scheme. */
export interface ModuleSchemeRow {
  readonly module: number;
  readonly group: number;
  readonly target: number;
}

/** Row view of the matcher's column-wise result (memoized per result). */
export function rows(ms: ModuleSchemes): readonly ModuleSchemeRow[] {
  const cached = rowCache.get(ms);
  if (cached) return cached;
  const out: ModuleSchemeRow[] = new Array(ms.modules.length);
  for (let k = 0; k < ms.modules.length; k++) out[k] = { module: ms.modules[k]!, group: ms.groups[k]!, target: ms.targets[k]! };
  rowCache.set(ms, out);
  return out;
}
const rowCache = new WeakMap<ModuleSchemes, readonly ModuleSchemeRow[]>();

