/** Renders the built-in catalog as the markdown table `docs/moe.md` carries. */
import { MOE_CATALOG, type CatalogEntry } from '../../src/moe/catalog.js';

function layout(e: CatalogEntry): string {
  const l = e.experts.layout;
  const flags = [
    l.isConcatenated ? null : 'not concatenated',
    l.isTransposed ? 'transposed' : null,
    l.hasBias ? 'bias' : null,
    l.hasGate ? null : 'no gate',
  ].filter((f) => f !== null);
  return `fused${flags.length > 0 ? ` (${flags.join(', ')})` : ''}`;
}

function router(e: CatalogEntry): string {
  const r = e.router;
  const extra = [
    r.normalisation === 'config:norm_topk_prob' ? 'norm_topk_prob' : r.normalisation === 'always' ? 'renormalised' : null,
    r.groups ? 'n_group/topk_group' : null,
    r.scoreCorrectionBias ? 'e_score_correction_bias' : null,
    r.scalingFactor ? 'routed_scaling_factor' : null,
    r.hasBias ? 'bias' : null,
    r.isLinear ? 'nn.Linear' : null,
  ].filter((f) => f !== null);
  return `\`${r.attribute}\`: ${r.class}, ${r.kind}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`;
}

function legacy(e: CatalogEntry): string {
  const w = e.llmCompressor.legacy;
  if (w === null) return 'none: skipped silently';
  return `${w.class} (${w.permanent ? 'permanent' : 'restored'}; ${w.unpacksExperts ? 'unpacks experts' : 'keeps fused experts'})`;
}

/** The catalog table, one row per block class. */
export function catalogTable(): string {
  const rows = MOE_CATALOG.map((e) =>
    [
      e.blockClass,
      e.experts.class,
      router(e),
      layout(e),
      e.sharedExperts.map((s) => `\`${s}\``).join(', ') + (e.sharedExpertGate ? ` + \`${e.sharedExpertGate}\`` : '') || '—',
      `\`${e.config.numExperts[0]}\`, \`${e.config.topK}\``,
      legacy(e),
      e.llmCompressor.linearizedAs,
    ].join(' | '),
  );
  return [
    '| block class | experts class | router | experts layout | shared experts | config keys | llm-compressor 0.11 | llm-compressor ≥ 0.12 |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r} |`),
  ].join('\n');
}
