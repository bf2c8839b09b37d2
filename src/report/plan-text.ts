/**
 * The human plan, rendered from the plan JSON alone (Terraform style): a
 * headline, the steps with symbols and compressed module lists, the
 * ignored modules with the pattern that removed them, and a closing count.
 */
import { compressNames } from '../match/compress-names.js';
import { formatBytes, formatInt } from '../plan/estimate.js';
import type { GptqCost } from '../plan/gptq-cost.js';
import { CALIBRATION_ASSUMPTIONS } from '../plan/pipeline.js';
import type { Plan, PlanExpertCoverage, PlanSpan, PlanStep, StepAction } from '../plan/types.js';

/** Display symbol per action. */
export const ACTION_SYMBOLS: Readonly<Record<StepAction, string>> = {
  load: '>',
  rewrite: '~',
  attach: '+',
  transform: '~',
  calibrate: '*',
  quantize: '#',
  restore: '<',
  save: '=',
};

/** How many compressed module patterns a step shows before "… and N more". */
const MAX_PATTERNS = 8;

/** One headline per rewrite group, then the quantization totals. */
export function planHeadlines(plan: Plan): string[] {
  const lines: string[] = [];
  for (const step of plan.steps) if (step.action === 'rewrite') lines.push(step.title);
  const unsupported = plan.diagnostics.filter((d) => d.code === 'moe-unsupported');
  for (const d of unsupported) lines.push(`${d.severity}: ${d.message.split('\n')[0]}`);
  const byScheme = new Map<string, number>();
  for (const q of plan.quantize) byScheme.set(q.scheme, (byScheme.get(q.scheme) ?? 0) + 1);
  for (const [key, count] of byScheme) {
    const s = plan.schemes[key]!;
    // Config groups are saved as group_0… whatever the recipe called them; name both.
    const label = s.preset ?? `config group "${s.group}"`;
    const saved = s.preset !== null || s.group === key ? s.savedFormat : `saved as ${key}, ${s.savedFormat}`;
    lines.push(`${formatInt(count)} module${count === 1 ? '' : 's'} get${count === 1 ? 's' : ''} ${label} (${saved})`);
  }
  if (plan.ignored.length > 0) lines.push(`${formatInt(plan.ignored.length)} module${plan.ignored.length === 1 ? '' : 's'} ignored`);
  return lines;
}

/** Renders the plan as text. `diagnosticsText` is the already rendered diagnostics (with code frames). */
export function renderPlanText(plan: Plan, diagnosticsText = ''): string {
  const out: string[] = [];
  const recipe = [plan.recipe.name ? `recipe "${plan.recipe.name}"` : 'recipe', plan.recipe.version ? `version ${plan.recipe.version}` : '']
    .filter(Boolean)
    .join(' ');
  out.push(`quantc plan: ${recipe} (${plan.recipe.path})`);
  out.push(
    `model ${plan.model.id} (${plan.model.modelType ?? 'module tree'}): ${formatInt(plan.model.modules)} modules${
      plan.model.modulesAfterRewrites !== plan.model.modules ? `, ${formatInt(plan.model.modulesAfterRewrites)} after rewrites` : ''
    }`,
  );
  out.push('');
  for (const h of planHeadlines(plan)) out.push(`  ${h}`);
  out.push('');
  out.push('Steps (> load, ~ rewrite/transform, + attach, * calibrate, # quantize, < restore, = save):');
  for (const step of plan.steps) out.push(...renderStep(step, plan.moe.coverage));
  if (plan.ignored.length > 0) {
    out.push('');
    out.push(`Ignored (${formatInt(plan.ignored.length)}), matched by a target but removed by ignore:`);
    const byPattern = new Map<string, string[]>();
    for (const ig of plan.ignored) {
      const list = byPattern.get(ig.pattern);
      if (list) list.push(ig.module);
      else byPattern.set(ig.pattern, [ig.module]);
    }
    for (const [pattern, modules] of byPattern) {
      out.push(`  - ${compress(modules).join(', ')}  (ignore "${pattern}")`);
    }
  }
  if (diagnosticsText.trim() !== '') {
    out.push('');
    out.push('Diagnostics:');
    out.push(diagnosticsText.trimEnd());
  }
  out.push('');
  out.push(summaryLine(plan));
  return `${out.join('\n')}\n`;
}

/** The closing line: counts, size estimate, diagnostics. */
export function summaryLine(plan: Plan): string {
  const s = plan.summary;
  const parts = [
    `${formatInt(s.rewrites)} rewrite${s.rewrites === 1 ? '' : 's'}`,
    `${formatInt(s.quantized)} to quantize`,
    `${formatInt(s.ignored)} ignored`,
  ];
  const size = `≈ ${formatBytes(s.bytesAfter)} from ${formatBytes(s.bytesBefore)} (${s.compressionRatio}x smaller)`;
  const diag = `${s.errors} error${s.errors === 1 ? '' : 's'}, ${s.warnings} warning${s.warnings === 1 ? '' : 's'}`;
  return `Plan: ${parts.join(', ')}; ${size}; ${s.requiresCalibrationData ? 'needs calibration data' : 'data-free'}; ${diag}.`;
}

/**
 * The expert coverage policy in one line, as the calibrate step states it:
 * `experts seeing < 64 calibration tokens: fallback to data-free weight quantization`.
 */
export function coveragePolicyText(coverage: PlanExpertCoverage): string {
  const n = coverage.minExpertTokens;
  const below = n === 1 ? 'experts that see no calibration token' : `experts seeing < ${formatInt(n)} calibration tokens`;
  switch (coverage.onLowCoverage) {
    case 'error':
      return `${below}: error, apply stops before writing anything`;
    case 'warning':
      return n === 1
        ? `${below}: warning, and they fall back to data-free weight quantization`
        : `${below}: warning, they keep the statistics they have (one that saw none falls back to data-free weight quantization)`;
    case 'fallback':
      return `${below}: fallback to data-free weight quantization`;
  }
}

function renderStep(step: PlanStep, coverage: PlanExpertCoverage | undefined): string[] {
  const lines = [`  ${String(step.index).padStart(2)}. ${ACTION_SYMBOLS[step.action]} ${step.action.padEnd(9)} ${step.title}`];
  const indent = ' '.repeat(18);
  if (step.modules && step.modules.length > 0) {
    for (const m of step.modules.slice(0, MAX_PATTERNS)) lines.push(`${indent}${m}`);
    if (step.modules.length > MAX_PATTERNS) lines.push(`${indent}… and ${step.modules.length - MAX_PATTERNS} more patterns`);
  }
  if (step.action === 'rewrite' && step.details) {
    lines.push(`${indent}(llm-compressor main: ${String(step.details.llmCompressorMain)}; 0.11: ${String(step.details.llmCompressor011)})`);
  }
  if (step.estimate?.calibrationBytes) {
    lines.push(`${indent}peak ≈ ${formatBytes(step.estimate.calibrationBytes)} per subgraph (largest: ${String(step.details?.largestSubgraph ?? '')}; batch ${CALIBRATION_ASSUMPTIONS.batchSize} × ${CALIBRATION_ASSUMPTIONS.seqLen} tokens)`);
  }
  if (step.estimate?.hiddenStatesBytes) {
    lines.push(`${indent}hidden states between subgraphs ≈ ${formatBytes(step.estimate.hiddenStatesBytes)} of host memory (${formatInt(CALIBRATION_ASSUMPTIONS.samples)} × ${formatInt(CALIBRATION_ASSUMPTIONS.seqLen)} tokens, float32)`);
  }
  if (step.action === 'calibrate' && coverage) lines.push(`${indent}${coveragePolicyText(coverage)}`);
  const gptq = step.details?.gptq as GptqCost | undefined;
  if (step.action === 'quantize' && gptq) lines.push(...gptqCostLines(gptq, indent));
  if (step.reason) lines.push(`${indent}(because target "${step.reason.pattern}"${where(step.reason.span)})`);
  return lines;
}

function flops(n: number): string {
  return `${n.toExponential(1).replace('e+', 'e')} FLOP`;
}

/** The GPTQ cost lines of a quantize step. */
export function gptqCostLines(c: GptqCost, indent: string): string[] {
  const shared = c.hessians < c.modules ? ` (one per distinct input; llm-compressor accumulates ${formatInt(c.modules)})` : '';
  return [
    `${indent}${formatInt(c.hessians)} Hessians for ${formatInt(c.modules)} modules${shared}: ${formatBytes(c.hessianBytes)} in float32, at most ${formatBytes(c.peakLayerHessianBytes)} per layer`,
    `${indent}for ${formatInt(CALIBRATION_ASSUMPTIONS.samples)} × ${formatInt(CALIBRATION_ASSUMPTIONS.seqLen)} tokens: accumulation ≈ ${flops(c.accumulateFlops)}` +
      (c.hessians < c.modules ? ` (${flops(c.perModuleAccumulateFlops)} one per module)` : '') +
      `, solve ≈ ${flops(c.solveFlops)}, ${formatBytes(c.weightBytes)} of weights`,
  ];
}

function where(span: PlanSpan | undefined): string {
  return span ? ` at ${span.file}:${span.line}:${span.column}` : '';
}

function compress(names: readonly string[]): string[] {
  return compressNames(names).map((g) => g.pattern);
}
