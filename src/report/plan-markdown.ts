/**
 * The plan as Markdown, for pull-request comments and run books: the same
 * content as the text form, as headings, a steps table and code blocks.
 */
import { formatBytes, formatInt } from '../plan/estimate.js';
import type { Plan } from '../plan/types.js';
import type { GptqCost } from '../plan/gptq-cost.js';
import { coveragePolicyText, gptqCostLines, planHeadlines, summaryLine } from './plan-text.js';

/** Renders the plan as Markdown. */
export function renderPlanMarkdown(plan: Plan): string {
  const out: string[] = [];
  out.push(`# Plan: ${plan.recipe.name ?? plan.recipe.path}${plan.recipe.version ? ` ${plan.recipe.version}` : ''} → ${plan.model.id}`);
  out.push('');
  out.push(`Recipe \`${plan.recipe.path}\`; model \`${plan.model.id}\` (${plan.model.modelType ?? 'module tree'}, ${formatInt(plan.model.modules)} modules).`);
  out.push('');
  for (const h of planHeadlines(plan)) out.push(`- ${escapeText(h)}`);
  out.push('');
  out.push('## Steps');
  out.push('');
  out.push('| # | action | what | modules |');
  out.push('|---|---|---|---|');
  for (const s of plan.steps) {
    const mods = s.modules && s.modules.length > 0 ? s.modules.slice(0, 4).map((m) => `\`${m}\``).join('<br>') + (s.modules.length > 4 ? `<br>… ${s.modules.length - 4} more` : '') : '';
    const coverage = s.action === 'calibrate' && plan.moe.coverage ? `<br>${escapeText(coveragePolicyText(plan.moe.coverage))}` : '';
    const gptq = s.action === 'quantize' && s.details?.gptq ? gptqCostLines(s.details.gptq as GptqCost, '').map((l) => `<br>${escapeText(l)}`).join('') : '';
    out.push(`| ${s.index} | ${s.action} | ${escapeText(s.title)}${coverage}${gptq} | ${mods} |`);
  }
  out.push('');
  out.push('## Schemes');
  out.push('');
  out.push('| scheme | preset | saved format | modules |');
  out.push('|---|---|---|---|');
  for (const [key, s] of Object.entries(plan.schemes)) {
    out.push(`| ${key} | ${s.preset ?? '—'} | ${s.savedFormat} | ${formatInt(plan.quantize.filter((q) => q.scheme === key).length)} |`);
  }
  if (plan.ignored.length > 0) {
    out.push('');
    out.push('## Ignored');
    out.push('');
    out.push('| module | pattern |');
    out.push('|---|---|');
    for (const ig of plan.ignored.slice(0, 50)) out.push(`| \`${ig.module}\` | \`${escapeCell(ig.pattern)}\` |`);
    if (plan.ignored.length > 50) out.push(`| … ${plan.ignored.length - 50} more | |`);
  }
  if (plan.diagnostics.length > 0) {
    out.push('');
    out.push('## Diagnostics');
    out.push('');
    for (const d of plan.diagnostics) {
      const at = d.span ? ` (${d.span.file}:${d.span.line}:${d.span.column})` : '';
      out.push(`- **${d.severity}** \`${d.code}\`${at}: ${escapeText(d.message.split('\n')[0]!)}`);
    }
  }
  out.push('');
  out.push(`**${summaryLine(plan)}** Estimated output ${formatBytes(plan.summary.bytesAfter)}.`);
  return `${out.join('\n')}\n`;
}

/** A pipe inside a table cell, even inside a code span, must be escaped or it splits the cell. */
function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** Plain text (messages quote regexes such as `re:.*mlp\.gate$`): escape what Markdown would eat or format. */
function escapeText(text: string): string {
  return text.replace(/[\\`*<[\]|]/g, '\\$&');
}
