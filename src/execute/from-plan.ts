/**
 * Turns a plan build (recipe lowered against a model) into the executor's
 * {@link ApplyJob}: config groups in first-use order, modules to quantize,
 * fused experts to unpack, and the `ignore` list compressed-tensors writes.
 */
import type { PlanBuild } from '../plan/lower.js';
import type { ModifierIR, MoeSettings, QuantizationArgs, QuantizationScheme } from '../ir/types.js';
import { actorderAsWritten, isGroupOrdering } from '../ir/quant-args.js';
import { inputCalibration, kvCacheCalibration, needsStatistics, UnsupportedActivationError } from './calibrate/activation-qparams.js';
import { classOf } from '../model/module-tree.js';
import { MappingError, resolveSmoothQuant, type ResolvedSmoothQuant } from '../match/smoothquant-mappings.js';
import { inferFormat } from './rtn/weight-kernel.js';
import { offsetNormTensors } from './offset-norms.js';
import { AwqMappingError, resolveAwq } from '../match/awq-mappings.js';
import { awqParentKind } from './awq/parent-kind.js';
import type { ApplyGroup, ApplyJob, ApplyModule, AwqSpec, FusedExpertsParam, SmoothSpec, StatisticsPass } from './types.js';
import type { Device } from './runtime.js';
import type { StoredName } from '../model/stored-names.js';

/** Where and how to run the job (what the plan does not say). */
export interface JobOptions {
  readonly modelDir: string;
  readonly outDir: string;
  readonly device: Device;
  readonly recipeYaml: string;
  readonly maxShardBytes?: number;
  /** The recipe's MoE settings (expert coverage policy of calibrated jobs). */
  readonly moe: Pick<MoeSettings, 'minExpertTokens' | 'onLowCoverage'>;
  /** The recipe's modifiers (transforms that attach no scheme, e.g. SmoothQuant, are read from here). */
  readonly modifiers?: readonly ModifierIR[];
  /** The checkpoint's name of each tree module (see `model/stored-names.ts`); the tree's own names when absent. */
  readonly storedName?: StoredName;
}

/** Why a plan cannot be executed; the message is user-facing. */
export class PlanNotExecutableError extends Error {}

/** compressed-tensors `get_vllm_module_type`: routers and gates count as Linear. */
export function vllmModuleType(className: string): string {
  if (!className.includes('ExpertMLP') && (className.includes('Router') || className.includes('Gate') || className.includes('Gating'))) return 'Linear';
  return className;
}

function schemeKey(s: QuantizationScheme): string {
  return JSON.stringify([s.targets, s.weights, s.input_activations, s.output_activations, s.format]);
}

/**
 * Builds the job for `build`; throws {@link PlanNotExecutableError} for
 * modifiers other than QuantizationModifier and for activation arguments
 * apply cannot calibrate. Jobs whose schemes need calibration carry a
 * {@link CalibrationSpec}.
 */
export function jobFromPlan(build: PlanBuild, options: JobOptions): ApplyJob {
  const { plan, tree } = build;
  const unsupported = plan.pipeline.perModifier.filter((m) => m.type !== 'QuantizationModifier' && m.type !== 'GPTQModifier' && m.type !== 'SmoothQuantModifier' && m.type !== 'AWQModifier');
  if (unsupported.length > 0) {
    const types = [...new Set(unsupported.map((m) => m.type))].join(', ');
    throw new PlanNotExecutableError(
      `${types} is not supported by apply: it runs QuantizationModifier recipes (data-free weight schemes, and calibrated static input scales, NVFP4 input global scales and kv-cache scales), GPTQModifier, SmoothQuantModifier and AWQModifier`,
    );
  }
  const smoothquant = smoothSpec(build, options.modifiers ?? []);
  const gptqModifiers = build.matches.map((m) => m.modifier).filter((m) => m.type === 'GPTQModifier');
  if (gptqModifiers.length > 1) throw new PlanNotExecutableError('apply runs one GPTQModifier per recipe; this recipe has several');
  const gptq = gptqModifiers[0];
  let kvCacheScheme = build.matches.reduce<QuantizationArgs | null>((kv, m) => m.modifier.quantization?.kvCacheScheme ?? kv, null);
  // The modifier whose kv_cache_scheme holds (the last that sets one).
  const kvCacheFrom = build.matches.reduce<number | null>((at, m) => (m.modifier.quantization?.kvCacheScheme ? m.modifier.index : at), null);
  let kvCacheModules = [...new Set(build.matches.flatMap((m) => m.kvCache))].sort((a, b) => a - b).map((m) => tree.names[m]!);

  const groups: ApplyGroup[] = [];
  const groupOf = new Map<string, number>();
  const modules: ApplyModule[] = [];
  const gptqModules: string[] = [];
  // Modules with static input scales whose scheme another quantization modifier attached, by that modifier.
  const staticFrom = new Map<number, string[]>();
  const quantizedTypes = new Set<string>();
  const unquantized = new Map<string, string[]>();
  // Cached-attention modules a scheme quantizes the activations of (compressed-tensors' attention quantization).
  const attentionModules = new Set(build.matches.flatMap((m) => [...m.assignment.attention.modules]));
  const attention: string[] = [];
  let attentionArgs: QuantizationArgs | null = null;
  for (let i = 0; i < tree.names.length; i++) {
    const name = tree.names[i];
    const type = vllmModuleType(classOf(tree, i).name);
    const assigned = build.finalScheme.get(i);
    if (!assigned) {
      if (!unquantized.has(type)) unquantized.set(type, []);
      unquantized.get(type)!.push(name);
      continue;
    }
    const s = plan.schemes[assigned.key];
    const byGptq = gptq !== undefined && isGptqTarget(gptq, build, assigned.modifier, classOf(tree, i).name);
    const weights = byGptq && gptqAttaches(build, gptq) && s.weights ? resolveActorder(s.weights, gptq.args.actorder) : s.weights;
    const scheme: QuantizationScheme = { targets: s.targets, weights, input_activations: s.input_activations, output_activations: s.output_activations, format: s.format };
    const onAttention = !scheme.weights && attentionModules.has(i);
    if (!scheme.weights && !onAttention) throw new PlanNotExecutableError(`${name}: schemes without weight quantization are not supported by apply yet`);
    if (onAttention) attentionArgs = attentionQuantization(name, scheme);
    const key = schemeKey(scheme);
    let g = groupOf.get(key);
    if (g === undefined) {
      g = groups.length;
      groupOf.set(key, g);
      groups.push({ name: `group_${g}`, scheme });
    }
    // Attention quantization: the query, key and value states get scales; the attention has no weight of its own.
    if (onAttention) {
      attention.push(name);
      continue;
    }
    quantizedTypes.add(type);
    modules.push({ name, group: g });
    if (gptq !== undefined && !byGptq && inputCalibration(scheme.input_activations, name) !== null) {
      if (!staticFrom.has(assigned.modifier)) staticFrom.set(assigned.modifier, []);
      staticFrom.get(assigned.modifier)!.push(name);
    }
    if (byGptq) {
      const unsupported = gptqUnsupported(scheme);
      if (unsupported) throw new PlanNotExecutableError(`${name}: ${unsupported}`);
      if (OTHER_TOWER.test(name)) {
        throw new PlanNotExecutableError(`${name}: apply calibrates text only, through the language model; add the vision tower and projector to the GPTQModifier's ignore list (llm-compressor's examples ignore "re:.*vision_tower.*" and "re:.*multi_modal_projector.*", or "re:.*visual.*", or "re:model.vision_model.*" and "re:model.connector.*")`);
      }
      // lm_head is calibrated in the final subgraph (final norm and lm_head), after the last decoder layer.
      if (!/(?:^|\.)layers\.\d+\./.test(name) && !/(?:^|\.)lm_head$/.test(name)) {
        throw new PlanNotExecutableError(`${name}: apply runs GPTQ on the decoder layers' modules and lm_head only; add "${name}" to the GPTQModifier's ignore list`);
      }
      gptqModules.push(name);
    }
  }
  // compressed-tensors saves an attention scheme's input arguments as the kv_cache_scheme, and k_scale / v_scale with q_scale.
  if (attentionArgs !== null && kvCacheScheme === null) {
    kvCacheScheme = attentionArgs;
    kvCacheModules = attention;
  } else if (attentionArgs !== null) kvCacheModules = [...new Set([...kvCacheModules, ...attention])];
  if (modules.length === 0 && (kvCacheScheme === null || kvCacheModules.length === 0)) throw new PlanNotExecutableError('the plan quantizes no module');
  if (gptq !== undefined && gptqModules.length === 0) {
    throw new PlanNotExecutableError(
      'GPTQModifier finds no module to quantize: no Linear layer it targets keeps a weight scheme (a later modifier with a config but no scheme overwrites them, see quantization-scheme-reset); llm-compressor stops here too ("GPTQModifier was unable to find any modules to quantize")',
    );
  }
  const awq = awqSpec(build, options.modifiers ?? []);
  if (awq && smoothquant) throw new PlanNotExecutableError('apply runs either SmoothQuantModifier or AWQModifier in one recipe, not both');
  let calibrated = kvCacheScheme !== null || gptq !== undefined || smoothquant !== undefined || awq !== undefined;
  try {
    for (const g of groups) {
      if (inputCalibration(g.scheme.input_activations, `${g.name} input_activations`) !== null) calibrated = true;
      const out = g.scheme.output_activations;
      if (out && out.dynamic !== true) throw new UnsupportedActivationError(`${g.name}: static output activations are not supported by apply`);
      if (g.scheme.weights?.observer === 'imatrix_mse') throw new UnsupportedActivationError(`${g.name}: the imatrix_mse weight observer is not supported by apply`);
    }
    if (kvCacheScheme) kvCacheCalibration(kvCacheScheme);
  } catch (e) {
    if (e instanceof UnsupportedActivationError) throw new PlanNotExecutableError(e.message);
    throw e;
  }
  // Each other quantization modifier observes its modules' static scales (and its kv cache's) in a pass of its own.
  const ownPasses: StatisticsPass[] = [];
  if (gptq !== undefined) {
    const from = new Set([...staticFrom.keys(), ...(kvCacheFrom !== null && kvCacheFrom !== gptq.index && kvCacheModules.length > 0 ? [kvCacheFrom] : [])]);
    for (const index of [...from].sort((a, b) => a - b)) ownPasses.push({ afterGptq: index > gptq.index, modules: staticFrom.get(index) ?? [], kvCache: index === kvCacheFrom });
  }
  const solvedByGptq = new Set(gptqModules);
  if (smoothquant?.afterGptq) checkAfterGptq('SmoothQuantModifier', smoothquant.mappings.flatMap((mp) => [mp.smooth, ...mp.balance]), solvedByGptq, needsStatistics({ groups, kvCacheScheme }));
  if (awq?.afterGptq) checkAfterGptq('AWQModifier', awq.mappings.flatMap((mp) => [mp.smooth, ...mp.balance]), solvedByGptq, needsStatistics({ groups, kvCacheScheme }));
  const ignore: string[] = [];
  for (const [type, names] of unquantized) if (quantizedTypes.has(type)) ignore.push(...names);

  const fusedExperts: FusedExpertsParam[] = [];
  for (const r of build.moe.rewrites) {
    if (r.rewrite !== 'unpack-fused-experts' || r.layout.kind !== 'fused') continue;
    const expertsModule = r.experts.name;
    const transposed = r.layout.isTransposed;
    const hasBias = r.layout.hasBias;
    const bias = (tensor: string): { bias?: string } => (hasBias ? { bias: `${tensor}_bias` } : {});
    // The in-memory shapes (the plan's tree holds the unpacked experts instead).
    const e = r.experts.count;
    const x = r.expert;
    const upOut = x ? (r.layout.hasGate ? 2 : 1) * x.intermediate : 0;
    const upShape = x ? { shape: transposed ? [e, x.hidden, upOut] : [e, upOut, x.hidden] } : {};
    const downShape = x ? { shape: transposed ? [e, x.intermediate, x.hidden] : [e, x.hidden, x.intermediate] } : {};
    // llm-compressor splits gate_up_proj into halves even where gate and up interleave (gpt-oss).
    if (r.layout.hasGate) fusedExperts.push({ tensor: `${expertsModule}.gate_up_proj`, expertsModule, transposed, projections: ['gate_proj', 'up_proj'], ...bias(`${expertsModule}.gate_up_proj`), ...upShape });
    else fusedExperts.push({ tensor: `${expertsModule}.up_proj`, expertsModule, transposed, projections: ['up_proj'], ...bias(`${expertsModule}.up_proj`), ...upShape });
    fusedExperts.push({ tensor: `${expertsModule}.down_proj`, expertsModule, transposed, projections: ['down_proj'], ...bias(`${expertsModule}.down_proj`), ...downShape });
  }
  const offsetNorms = offsetNormTensors(tree);
  return storedJob(options.storedName, {
    modelDir: options.modelDir,
    outDir: options.outDir,
    device: options.device,
    groups,
    modules,
    fusedExperts,
    ignore,
    kvCacheScheme,
    ...(offsetNorms.length > 0 ? { offsetNorms } : {}),
    ...(calibrated
      ? {
          calibration: {
            calibrateAllExperts: build.plan.moe.calibrateAllExperts,
            minExpertTokens: options.moe.minExpertTokens,
            onLowCoverage: options.moe.onLowCoverage,
            kvCacheModules,
          },
        }
      : {}),
    ...(smoothquant ? { smoothquant } : {}),
    ...(awq ? { awq } : {}),
    ...(attention.length > 0 ? { attentionQuant: attention } : {}),
    ...(gptq
      ? {
          gptq: {
            blockSize: typeof gptq.args.block_size === 'number' ? gptq.args.block_size : 128,
            dampeningFrac: typeof gptq.args.dampening_frac === 'number' ? gptq.args.dampening_frac : 0.01,
            modules: gptqModules,
          },
          ...(ownPasses.length > 0 ? { ownPasses } : {}),
        }
      : {}),
    recipeYaml: options.recipeYaml,
    maxShardBytes: options.maxShardBytes,
  });
}

/**
 * The job with every module name as the checkpoint stores it: the weight
 * pass reads and writes stored tensors, calibration observes the stored
 * language model, and compressed-tensors writes `ignore` in stored names.
 */
function storedJob(stored: StoredName | undefined, job: ApplyJob): ApplyJob {
  if (!stored) return job;
  const s = stored;
  // Tensor names: the module part renamed, the parameter kept.
  const t = (tensor: string): string => {
    const i = tensor.lastIndexOf('.');
    return `${s(tensor.slice(0, i))}${tensor.slice(i)}`;
  };
  return {
    ...job,
    modules: job.modules.map((m) => ({ ...m, name: s(m.name) })),
    ignore: job.ignore.map(s),
    fusedExperts: job.fusedExperts.map((f) => ({ ...f, tensor: t(f.tensor), expertsModule: s(f.expertsModule), ...(f.bias === undefined ? {} : { bias: t(f.bias) }) })),
    ...(job.offsetNorms ? { offsetNorms: job.offsetNorms.map(t) } : {}),
    ...(job.calibration ? { calibration: { ...job.calibration, kvCacheModules: job.calibration.kvCacheModules.map(s) } } : {}),
    ...(job.smoothquant ? { smoothquant: { ...job.smoothquant, mappings: job.smoothquant.mappings.map((m) => ({ ...m, smooth: s(m.smooth), balance: m.balance.map(s) })) } } : {}),
    ...(job.awq ? { awq: { ...job.awq, mappings: job.awq.mappings.map((m) => ({ ...m, smooth: s(m.smooth), balance: m.balance.map(s), parent: s(m.parent) })) } } : {}),
    ...(job.gptq ? { gptq: { ...job.gptq, modules: job.gptq.modules.map(s) } } : {}),
    ...(job.ownPasses ? { ownPasses: job.ownPasses.map((p) => ({ ...p, modules: p.modules.map(s) })) } : {}),
    ...(job.attentionQuant ? { attentionQuant: job.attentionQuant.map(s) } : {}),
  };
}

/** Modules of a multimodal model outside its language model (which calibration runs through): vision towers, projectors, Idefics3's connector. */
const OTHER_TOWER = /^(?:model\.)?(?:vision_model|vision_tower|multi_modal_projector|visual|connector)\./;

/**
 * The recipe's one modifier of `type`, a stage that changes weights before
 * they are quantized: at most one, and before every quantization modifier
 * but a GPTQModifier. After GPTQ it runs on the model GPTQ quantized, as
 * llm-compressor's independent pipeline runs the modifiers in recipe order
 * (its non-uniform example: GPTQ on attention, then AWQ and RTN on the MLP);
 * {@link checkAfterGptq} keeps it off GPTQ's modules.
 */
function smoothingStage(modifiers: readonly ModifierIR[], type: 'SmoothQuantModifier' | 'AWQModifier'): { modifier: ModifierIR; afterGptq: boolean } | undefined {
  const found = modifiers.filter((m) => m.type === type);
  if (found.length === 0) return undefined;
  if (found.length > 1) throw new PlanNotExecutableError(`apply runs one ${type} per recipe; this recipe has several`);
  const m = found[0]!;
  const before = modifiers.filter((q) => q.quantization && q.index < m.index);
  if (before.some((q) => q.type !== 'GPTQModifier')) throw new PlanNotExecutableError(`${type} must come before the quantization modifiers other than GPTQModifier: it changes the weights they quantize`);
  return { modifier: m, afterGptq: before.length > 0 };
}

/**
 * A smoothing stage after GPTQ: the Linear layers it rescales must not be
 * GPTQ's (their solved weights would leave the quantization grid), and no
 * static statistics may be due (apply observes them in GPTQ's pass, before
 * the smoothing, where llm-compressor observes a later modifier's in that
 * modifier's own pass).
 */
function checkAfterGptq(type: string, changed: readonly string[], gptqModules: ReadonlySet<string>, statistics: boolean): void {
  const solved = changed.filter((n) => gptqModules.has(n));
  if (solved.length > 0) {
    throw new PlanNotExecutableError(
      `${type} comes after GPTQModifier and would rescale ${solved.length > 3 ? `${solved.slice(0, 3).join(', ')} and ${solved.length - 3} more` : solved.join(', ')}, whose weights GPTQ has already solved; put ${type} first, or leave these layers out of its mappings or of GPTQ's targets`,
    );
  }
  if (statistics) {
    throw new PlanNotExecutableError(`${type} after GPTQModifier is supported for weight-only and dynamic-activation schemes; this recipe also calibrates static activation or kv-cache scales, which apply observes in GPTQ's pass, before the smoothing. Put ${type} first`);
  }
}

/**
 * The SmoothQuant stage of a recipe, if it has one: the modifier's mappings
 * (its own, else the registry's for the model class) resolved against the
 * module tree. It must come before the quantization modifiers.
 */
function smoothSpec(build: PlanBuild, modifiers: readonly ModifierIR[]): SmoothSpec | undefined {
  const stage = smoothingStage(modifiers, 'SmoothQuantModifier');
  if (!stage) return undefined;
  const m = stage.modifier;
  if (m.args.algorithm !== undefined && m.args.algorithm !== 'smoothquant') throw new PlanNotExecutableError(`SmoothQuantModifier algorithm "${String(m.args.algorithm)}" is not supported by apply`);
  let resolved: ResolvedSmoothQuant;
  try {
    resolved = resolveSmoothQuant(build.tree, m.args);
  } catch (e) {
    if (e instanceof MappingError) throw new PlanNotExecutableError(e.message);
    throw e;
  }
  // Calibration runs text only: a vision tower's smooth layers never see data, and llm-compressor skips them.
  const mappings = resolved.mappings.filter((x) => !OTHER_TOWER.test(x.smooth));
  if (mappings.length === 0) throw new PlanNotExecutableError('SmoothQuantModifier resolves no mapping on this model: it would smooth nothing');
  return { strength: typeof m.args.smoothing_strength === 'number' ? m.args.smoothing_strength : 0.5, mappings, ...(stage.afterGptq ? { afterGptq: true } : {}) };
}

/**
 * The AWQ stage of a recipe, if it has one: its mappings resolved against
 * the module tree (modules with a final scheme count as quantized). It must
 * come before the quantization modifiers.
 */
function awqSpec(build: PlanBuild, modifiers: readonly ModifierIR[]): AwqSpec | undefined {
  const stage = smoothingStage(modifiers, 'AWQModifier');
  if (!stage) return undefined;
  const m = stage.modifier;
  const duo = m.args.duo_scaling ?? true;
  if (duo !== true && duo !== false && duo !== 'both') throw new PlanNotExecutableError(`AWQModifier duo_scaling must be true, false or "both", not ${JSON.stringify(duo)}`);
  const nGrid = typeof m.args.n_grid === 'number' ? m.args.n_grid : 20;
  if (!Number.isInteger(nGrid) || nGrid < (duo === 'both' ? 4 : 2)) throw new PlanNotExecutableError(`AWQModifier n_grid must be an integer of at least ${duo === 'both' ? 4 : 2}, not ${JSON.stringify(m.args.n_grid)}`);
  const quantized = new Set([...build.finalScheme.keys()].map((i) => build.tree.names[i]!));
  let resolved;
  try {
    resolved = resolveAwq(build.tree, m.args, (name) => quantized.has(name));
  } catch (e) {
    if (e instanceof AwqMappingError) throw new PlanNotExecutableError(e.message);
    throw e;
  }
  if (resolved.mappings.length === 0) throw new PlanNotExecutableError('AWQModifier resolves no mapping on this model: it would smooth nothing');
  const classOfName = new Map(build.tree.names.map((n, i) => [n, i]));
  const parentClass = (name: string): string | undefined => {
    const i = classOfName.get(name);
    return i === undefined ? undefined : classOf(build.tree, i).name;
  };
  const unsupported = resolved.mappings.find((mp) => awqParentKind(mp, parentClass(mp.parent)) === null);
  if (unsupported) {
    throw new PlanNotExecutableError(
      `AWQ mapping ${unsupported.smooth} → ${unsupported.balance.length > 3 ? `${unsupported.balance.length} balance layers` : unsupported.balance.join(', ')}: apply's grid search evaluates a single Linear, llama-style or gpt-oss self-attention (q/k/v_proj), a gated MLP (gate/up_proj) or an MoE block (Qwen3-MoE, Qwen2-MoE, Qwen3-Next, OLMoE, Mixtral, GraniteMoE, PhiMoE, gpt-oss, Llama 4, GLM-4.5, DeepSeek-V3, GLM-4.7-Flash) as the parent module, not "${unsupported.parent}"${parentClass(unsupported.parent) ? ` (${parentClass(unsupported.parent)})` : ''}`,
    );
  }
  if (!build.plan.moe.calibrateAllExperts && resolved.mappings.some((mp) => mp.balance.some((b) => /\.experts\.\d+\./.test(b)))) {
    throw new PlanNotExecutableError('AWQ on experts needs every expert to see every calibration token (moe calibrate_all_experts = true): the grid search replays each expert on the tokens it was calibrated on');
  }
  if (duo !== false) {
    for (const mp of resolved.mappings) {
      for (const b of mp.balance) {
        const assigned = build.finalScheme.get(classOfName.get(b)!);
        const s = assigned ? build.plan.schemes[assigned.key]?.weights : undefined;
        if (s?.strategy === 'tensor') throw new PlanNotExecutableError(`duo_scaling is only supported with per-channel quantization strategies (group or channel), but found TENSOR strategy on layer ${b}. Please set duo_scaling=False or use a per-channel quantization strategy.`);
      }
    }
  }
  return { duoScaling: duo, nGrid, mappings: resolved.mappings.map((mp) => ({ ...mp, parentClass: parentClass(mp.parent) })), ...(stage.afterGptq ? { afterGptq: true } : {}) };
}

/**
 * The arguments of an attention scheme apply can calibrate (static per-tensor
 * FP8 query, key and value states, as llm-compressor's attention example
 * quantizes them), or an error naming the module.
 */
function attentionQuantization(name: string, scheme: QuantizationScheme): QuantizationArgs {
  const a = scheme.input_activations;
  if (!a || scheme.output_activations || a.type !== 'float' || a.num_bits !== 8 || a.dynamic !== false || a.strategy !== 'tensor' || a.symmetric !== true) {
    throw new PlanNotExecutableError(`${name}: apply quantizes attention (its query, key and value states) with static, symmetric per-tensor FP8 input activations only`);
  }
  return a;
}

/** Why GPTQ cannot solve weights of `scheme`, or null. */
function gptqUnsupported(scheme: QuantizationScheme): string | null {
  const format = inferFormat(scheme);
  if (format === 'mxfp4-pack-quantized' || format === 'mxfp8-quantized') return `GPTQ of MX weights (${format}) is not supported by apply`;
  if (format === 'nvfp4-pack-quantized' && isGroupOrdering(scheme.weights?.actorder ?? null)) {
    return "GPTQ group activation ordering with NVFP4 weights is not supported: compressed-tensors' NVFP4 format cannot save weight_g_idx (use actorder static)";
  }
  return null;
}

/** Whether the GPTQModifier attaches schemes of its own (else it reuses those of earlier modifiers). */
function gptqAttaches(build: PlanBuild, gptq: ModifierIR): boolean {
  const match = build.matches.find((m) => m.modifier === gptq);
  return match !== undefined && match.groups.some((g) => g.scheme.weights || g.scheme.input_activations || g.scheme.output_activations);
}

/**
 * Whether GPTQ quantizes a module whose final scheme came from modifier
 * `from`: its own schemes, or, for a GPTQModifier without a config, those
 * earlier modifiers attached. Embeddings are never GPTQ'd (llm-compressor
 * hooks Linear modules only).
 */
function isGptqTarget(gptq: ModifierIR, build: PlanBuild, from: number, className: string): boolean {
  if (className === 'Embedding') return false;
  return gptqAttaches(build, gptq) ? from === gptq.index : from < gptq.index;
}

/**
 * llm-compressor's actorder resolution for a GPTQ config group: the scheme's
 * own value wins, else the modifier's (`static` by default); group ordering
 * on a strategy other than group/tensor_group falls back to none.
 */
export function resolveActorder(weights: QuantizationArgs, modifierValue: unknown): QuantizationArgs {
  // The IR materializes the modifier's default ("static"); an explicit null is dropped, so absent means none.
  const resolved = weights.actorder ?? actorderAsWritten(modifierValue);
  const ok = !isGroupOrdering(resolved) || weights.strategy === 'group' || weights.strategy === 'tensor_group';
  return { ...weights, actorder: ok ? resolved : null };
}
