/**
 * Why one module is treated the way the plan says: created or replaced by
 * a calibration rewrite, which modifier's target attached which scheme (and
 * which other targets lost on precedence), which ignore entry removed it,
 * or why it is left untouched. Data only; `report/explain-text.ts` prints it.
 */
import { suggestion } from '../diagnostics.js';
import { BY_CLASS, BY_NAME, matchIndex, patternHits } from '../match/match-index.js';
import { classOf, indexByName, paramsOf } from '../model/module-tree.js';
import type { Span } from '../source.js';
import { gptqLayerOf, inputKey } from './gptq-cost.js';
import { rows, type PlanBuild } from './lower.js';

/** A pattern and how it hit the module. */
export interface PatternHit {
  readonly pattern: string;
  readonly origin: Span | undefined;
  /** `name` (exact or regex on the qualified name) or `class` (class name in the MRO). */
  readonly by: 'name' | 'class';
}

/** What one quantization modifier does to the module. */
export interface ModifierVerdict {
  readonly modifier: number;
  readonly type: string;
  readonly stage: string;
  readonly outcome: 'quantized' | 'attention' | 'ignored' | 'matched-not-quantizable' | 'not-matched' | 'kv-cache';
  /** The config group whose scheme it gets (quantized/attention). */
  readonly group?: string;
  readonly preset?: string | null;
  /** The target that decided (precedence winner), when matched. */
  readonly decidedBy?: PatternHit;
  /** Other targets that match too but lose on precedence. */
  readonly alsoMatched: readonly PatternHit[];
  /** The ignore entry that removed it (ignored), or that matches it without effect (not-matched). */
  readonly ignoredBy?: PatternHit;
}

/** The whole explanation of one module. */
export interface Explanation {
  readonly module: string;
  /** Class in the rewritten tree (or in the original, for replaced modules). */
  readonly class: string;
  readonly mro: readonly string[];
  /**
   * Set when a calibration rewrite created the module (`kind` is the rewrite,
   * or `container` for the new experts ModuleList) or replaced it.
   */
  readonly rewrite?: { readonly block: string; readonly class: string; readonly kind: string; readonly replaced: boolean };
  readonly verdicts: readonly ModifierVerdict[];
  /** Set when the recipe smooths (SmoothQuant): the module's role in a mapping, or none. */
  readonly smoothing?: { readonly role: 'smooth' | 'balance' | 'none'; readonly smooth?: string; readonly balance?: readonly string[] };
  /** Set when the recipe has an AWQModifier: the module's roles in its mappings (a Linear can smooth one mapping and balance another), or why a mapping naming it was skipped. */
  readonly awq?: { readonly roles: readonly AwqRole[] };
  /** Set when a GPTQModifier solves the module: its decoder layer (`lm_head`: the last, solved with it) and the modules sharing its input Hessian. */
  readonly gptq?: { readonly layer: string; readonly columns: number; readonly sharedWith: readonly string[] };
  /** The scheme the saved checkpoint will carry, if any. */
  readonly final: { readonly scheme: string; readonly preset: string | null; readonly format: string } | null;
}

/** One AWQ mapping naming a module: as its smooth layer or a balance layer, resolved or skipped. */
export interface AwqRole {
  readonly role: 'smooth' | 'balance';
  readonly smooth: string;
  readonly balance: readonly string[];
  /** The parent module the grid search compares (resolved mappings). */
  readonly parent?: string;
  /** Why llm-compressor skips the mapping (skipped mappings). */
  readonly skipped?: string;
}

/** Explains `name`, or returns a message (with a suggestion) when the module does not exist. */
export function explainModule(build: PlanBuild, name: string): Explanation | { readonly error: string } {
  const { tree, original } = build;
  const byName = indexByName(tree);
  const m = byName.get(name);
  if (m === undefined) {
    const inOriginal = indexByName(original).get(name);
    if (inOriginal !== undefined) {
      const rw = build.moe.rewrites.find((r) => r.experts.name === name);
      const cls = classOf(original, inOriginal);
      return {
        module: name,
        class: cls.name,
        mro: cls.mro,
        ...(rw ? { rewrite: { block: rw.module, class: rw.class, kind: rw.rewrite, replaced: true } } : {}),
        verdicts: [],
        final: null,
      };
    }
    return { error: `The model has no module "${name}".${parameterHint(build, name) ?? suggestion(name, tree.names)}` };
  }
  const cls = classOf(tree, m);
  const unpacked = build.moe.rewrites.filter((r) => r.rewrite === 'unpack-fused-experts');
  const container = unpacked.find((r) => r.experts.name === name);
  const inside = unpacked.find((r) => name.startsWith(`${r.experts.name}.`));
  const index = matchIndex(tree);
  const verdicts: ModifierVerdict[] = build.matches.map((match) => {
    const base = { modifier: match.modifier.index, type: match.modifier.type, stage: match.modifier.stage };
    const hits: PatternHit[] = [];
    for (const t of match.assignment.targets) {
      const bits = patternHits(index, t.pattern).bits[m]!;
      if (bits & BY_NAME) hits.push({ pattern: t.pattern.text, origin: t.pattern.origin, by: 'name' });
      else if (bits & BY_CLASS) hits.push({ pattern: t.pattern.text, origin: t.pattern.origin, by: 'class' });
    }
    if (match.kvCache.includes(m) && hits.length === 0) return { ...base, outcome: 'kv-cache', alsoMatched: [] };
    if (hits.length === 0) {
      // An ignore entry that matches an untargeted module changes nothing; say so, since the user wrote it for this module.
      const p = match.ignore.find((ig) => patternHits(index, ig).bits[m] !== 0);
      if (!p) return { ...base, outcome: 'not-matched', alsoMatched: [] };
      const by = (patternHits(index, p).bits[m]! & BY_NAME) !== 0 ? 'name' : 'class';
      return { ...base, outcome: 'not-matched', ignoredBy: { pattern: p.text, origin: p.origin, by }, alsoMatched: [] };
    }
    const ignored = match.assignment.match.ignored.find((ig) => ig.module === m);
    if (ignored) {
      const p = match.ignore[ignored.ignore]!;
      const by = (patternHits(index, p).bits[m]! & BY_NAME) !== 0 ? 'name' : 'class';
      return { ...base, outcome: 'ignored', ignoredBy: { pattern: p.text, origin: p.origin, by }, decidedBy: hits[0]!, alsoMatched: hits.slice(1) };
    }
    for (const [outcome, list] of [
      ['quantized', match.assignment.quantized],
      ['attention', match.assignment.attention],
      ['matched-not-quantizable', match.assignment.skipped],
    ] as const) {
      const row = rows(list).find((r) => r.module === m);
      if (!row) continue;
      const winner = match.assignment.targets[row.target]!.pattern;
      const decidedBy = hits.find((h) => h.pattern === winner.text)!;
      const group = match.groups[row.group]!;
      const preset = match.modifier.quantization?.groups.find((g) => g.name === group.name)?.preset ?? null;
      return { ...base, outcome, group: group.name, preset, decidedBy, alsoMatched: hits.filter((h) => h !== decidedBy) };
    }
    return { ...base, outcome: 'not-matched', alsoMatched: hits };
  });
  const fs = build.finalScheme.get(m);
  const scheme = fs ? build.plan.schemes[fs.key] : undefined;
  const gptq = fs ? gptqRole(build, m, fs.modifier) : undefined;
  const smoothing = smoothingRole(build, name, cls.name);
  const awq = awqRoles(build, name);
  return {
    module: name,
    class: cls.name,
    mro: cls.mro,
    ...(container ? { rewrite: { block: container.module, class: container.class, kind: 'container', replaced: false } } : {}),
    ...(inside ? { rewrite: { block: inside.module, class: inside.class, kind: inside.rewrite, replaced: false } } : {}),
    verdicts,
    ...(gptq ? { gptq } : {}),
    ...(smoothing ? { smoothing } : {}),
    ...(awq ? { awq } : {}),
    final: fs && scheme ? { scheme: fs.key, preset: scheme.preset, format: scheme.savedFormat } : null,
  };
}

/** The module's role in the plan's SmoothQuant mappings; undefined without SmoothQuant, or for modules that are neither norms nor Linear. */
function smoothingRole(build: PlanBuild, name: string, className: string): Explanation['smoothing'] {
  const steps = build.plan.steps.filter((s) => s.action === 'transform' && Array.isArray(s.details?.mappings));
  if (steps.length === 0) return undefined;
  for (const step of steps) {
    for (const m of step.details!.mappings as { smooth: string; balance: string[] }[]) {
      if (m.smooth === name) return { role: 'smooth', smooth: m.smooth, balance: m.balance };
      if (m.balance.includes(name)) return { role: 'balance', smooth: m.smooth, balance: m.balance };
    }
  }
  return className === 'Linear' || /Norm/.test(className) ? { role: 'none' } : undefined;
}

/** The module's roles in the plan's AWQ mappings; undefined without AWQ. */
function awqRoles(build: PlanBuild, name: string): Explanation['awq'] {
  const steps = build.plan.steps.filter((s) => s.action === 'transform' && Array.isArray(s.details?.awqMappings));
  if (steps.length === 0) return undefined;
  const roles: AwqRole[] = [];
  for (const step of steps) {
    for (const m of step.details!.awqMappings as { smooth: string; balance: string[]; parent: string }[]) {
      if (m.smooth === name) roles.push({ role: 'smooth', smooth: m.smooth, balance: m.balance, parent: m.parent });
      else if (m.balance.includes(name)) roles.push({ role: 'balance', smooth: m.smooth, balance: m.balance, parent: m.parent });
    }
    for (const m of step.details!.skippedMappings as { smooth: string; balance: string[]; reason: string }[]) {
      if (m.smooth === name) roles.push({ role: 'smooth', smooth: m.smooth, balance: m.balance, skipped: m.reason });
      else if (m.balance.includes(name)) roles.push({ role: 'balance', smooth: m.smooth, balance: m.balance, skipped: m.reason });
    }
  }
  return { roles };
}

/** The module's place in a GPTQ run, when a GPTQModifier solves it (see gptq-cost.ts for the Hessian sharing rule). */
function gptqRole(build: PlanBuild, m: number, from: number): Explanation['gptq'] {
  const { tree } = build;
  const gptq = build.matches.find((x) => x.modifier.type === 'GPTQModifier');
  if (!gptq || classOf(tree, m).name === 'Embedding') return undefined;
  const attaches = gptq.groups.some((g) => g.scheme.weights || g.scheme.input_activations || g.scheme.output_activations);
  if (attaches ? from !== gptq.modifier.index : from >= gptq.modifier.index) return undefined;
  const allExperts = build.plan.moe.calibrateAllExperts;
  const name = tree.names[m]!;
  const key = inputKey(name, allExperts);
  const layer = gptqLayerOf(tree, name);
  const sharedWith: string[] = [];
  for (const [other, e] of build.finalScheme) {
    if (other === m || e.modifier !== from || !tree.names[other]!.startsWith(`${layer}.`)) continue;
    if (inputKey(tree.names[other]!, allExperts) === key) sharedWith.push(tree.names[other]!);
  }
  const weight = paramsOf(tree, m).find((p) => p.name === 'weight');
  return { layer, columns: weight?.shape[1] ?? 0, sharedWith: sharedWith.sort() };
}

/** When `name` is a parameter (`….experts.gate_up_proj`), the module that holds it and what the rewrite made of it. */
function parameterHint(build: PlanBuild, name: string): string | undefined {
  const dot = name.lastIndexOf('.');
  if (dot < 0) return undefined;
  const owner = name.slice(0, dot);
  const param = name.slice(dot + 1);
  for (const tree of [build.tree, build.original]) {
    const i = indexByName(tree).get(owner);
    if (i === undefined || !paramsOf(tree, i).some((p) => p.name === param)) continue;
    const unpacked = build.moe.rewrites.some((r) => r.rewrite === 'unpack-fused-experts' && r.experts.name === owner);
    const example = unpacked ? build.tree.names.find((n) => n.startsWith(`${owner}.0.`)) : undefined;
    const into = example ? ` The calibration rewrite unpacks it into per-expert Linear modules such as "${example}".` : '';
    return ` "${param}" is a parameter of "${owner}" (${classOf(tree, i).name}), not a module.${into}`;
  }
  return undefined;
}
