/**
 * Prints an explanation: one paragraph per modifier naming the rule and the
 * line that decided the module's treatment.
 */
import { formatBytes } from '../plan/estimate.js';
import type { Explanation, PatternHit } from '../plan/explain.js';
import { formatLocation, type SourceMap } from './diagnostics.js';

/** Renders `quantc explain` output. */
export function renderExplanation(e: Explanation, sources: SourceMap): string {
  const out: string[] = [];
  out.push(`${e.module === '' ? '(root)' : e.module} (${e.class}${e.mro.length > 2 ? `: ${e.mro.slice(1, -1).join(' → ')}` : ''})`);
  if (e.rewrite) {
    out.push(
      e.rewrite.replaced
        ? `  replaced: the calibration rewrite of ${e.rewrite.block} (${e.rewrite.class}, ${e.rewrite.kind}) turns it into per-expert Linear modules; targets match those instead.`
        : e.rewrite.kind === 'container'
          ? `  the calibration rewrite of ${e.rewrite.block} (${e.rewrite.class}) put this container of per-expert Linear modules in place of the fused experts.`
          : `  created by the calibration rewrite of ${e.rewrite.block} (${e.rewrite.class}, ${e.rewrite.kind}).`,
    );
  }
  for (const v of e.verdicts) {
    const head = `  ${v.type} #${v.modifier} (stage "${v.stage}"):`;
    switch (v.outcome) {
      case 'quantized':
      case 'attention':
        out.push(`${head} gets ${v.preset ?? v.group}${v.outcome === 'attention' ? ' (attention activations)' : ''} from ${hit(v.decidedBy!, sources)}.`);
        break;
      case 'ignored':
        out.push(`${head} ignored by ${hit(v.ignoredBy!, sources, 'ignore entry')} (${hit(v.decidedBy!, sources)} matched it).`);
        break;
      case 'matched-not-quantizable':
        out.push(`${head} ${hit(v.decidedBy!, sources)} matches it, but ${e.class} is not a Linear, Embedding or attention module, so it receives no scheme.`);
        break;
      case 'kv-cache':
        out.push(`${head} gets the kv_cache_scheme (k_scale, v_scale) as a cached attention module.`);
        break;
      default:
        out.push(
          v.ignoredBy
            ? `${head} no target matches it; ${hit(v.ignoredBy, sources, 'ignore entry')} matches it too, which changes nothing.`
            : `${head} no target matches it.`,
        );
    }
    for (const a of v.alsoMatched) out.push(`      also matched by ${hit(a, sources)}, which loses on precedence (exact name > re: alphabetical > class).`);
  }
  if (e.verdicts.length === 0 && !e.rewrite) out.push('  The recipe has no quantization modifier.');
  if (e.smoothing) {
    const sm = e.smoothing;
    if (sm.role === 'smooth') out.push(`  smoothquant: smooth layer; its weight is divided by the smoothing scales balanced against ${sm.balance!.map((b) => `"${b}"`).join(', ')}.`);
    else if (sm.role === 'balance') out.push(`  smoothquant: balance layer of "${sm.smooth}"; its input columns are multiplied by that mapping's smoothing scales.`);
    else out.push('  smoothquant: not smoothed: no mapping names it as a smooth or balance layer.');
  }
  if (e.awq) {
    const names = (xs: readonly string[]): string => (xs.length > 4 ? `${xs.length} layers` : xs.map((b) => `"${b}"`).join(', '));
    if (e.awq.roles.length === 0) out.push('  awq: not balanced: no AWQ mapping names it as a smooth or balance layer.');
    for (const r of e.awq.roles) {
      if (r.skipped) out.push(`  awq: ${r.role} layer of the mapping "${r.smooth}" → ${names(r.balance)}, which is skipped: ${r.skipped}.`);
      else if (r.role === 'smooth') out.push(`  awq: smooth layer; its output is divided by the scales the grid search picks against ${names(r.balance)} (loss on "${r.parent}").`);
      else out.push(`  awq: balance layer of "${r.smooth}"; its input columns are multiplied by that mapping's scales, chosen by the loss on "${r.parent}".`);
    }
  }
  if (e.gptq) {
    const k = e.gptq.columns;
    const shared = e.gptq.sharedWith;
    const whose = shared.length === 0 ? 'is its own' : shared.length <= 3 ? `is shared with ${shared.map((s) => `"${s}"`).join(', ')}` : `is shared with ${shared.length} other modules (e.g. "${shared[0]}")`;
    out.push(`  gptq: solved after the statistics pass of ${e.gptq.layer || 'the model'}; its input Hessian (${k}×${k} float32, ${formatBytes(4 * k * k)}) ${whose}.`);
  }
  out.push(
    e.final
      ? `  result: quantized as ${e.final.preset ?? e.final.scheme} (${e.final.scheme}), saved as ${e.final.format}.`
      : '  result: left as is (not quantized).',
  );
  return `${out.join('\n')}\n`;
}

function hit(h: PatternHit, sources: SourceMap, role = 'target'): string {
  const at = h.origin ? ` at ${formatLocation(h.origin, sources)}` : '';
  return `${role}${h.by === 'class' ? ' (class name)' : ''} "${h.pattern}"${at}`;
}
