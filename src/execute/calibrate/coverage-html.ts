/**
 * The expert coverage report as one self-contained HTML page: a heat map
 * with MoE layers as rows and experts as columns, each cell shaded by the
 * tokens routed to that expert relative to an even share
 * (`tokens × top-k / experts`), with exact counts on hover. No scripts, no
 * external resources, so the file can be attached to a review as is.
 */
import type { ExpertCoverage } from './coverage.js';

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Cell colour: white for an even share or more, deepening red as the share falls to zero. */
function shade(ratio: number): string {
  const r = Math.max(0, Math.min(1, ratio));
  const lightness = Math.round(45 + 55 * r);
  return `hsl(0, 85%, ${lightness}%)`;
}

/** Renders `coverage` (titled `title`) as an HTML document. */
export function coverageHtml(coverage: ExpertCoverage, title: string): string {
  const experts = Math.max(0, ...coverage.layers.map((l) => l.routed.length));
  const header = Array.from({ length: experts }, (_, e) => `<th>${e}</th>`).join('');
  const rows = coverage.layers.map((l) => {
    const total = l.routed.reduce((a, b) => a + b, 0);
    const even = total / l.routed.length;
    const cells = l.routed
      .map((n, e) => `<td style="background:${shade(even > 0 ? n / even : 0)}" title="layer ${l.layer}, expert ${e}: ${n} routed tokens, ${l.seen[e]} seen">${n}</td>`)
      .join('');
    return `<tr><th>${l.layer}</th>${cells}</tr>`;
  });
  const mode = coverage.calibrateAllExperts ? 'every expert saw every token (calibrate_all_experts)' : 'experts saw only the tokens routed to them';
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>Expert coverage — ${escapeHtml(title)}</title>`,
    '<style>body{font:13px system-ui,sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 4px;text-align:right;min-width:2.2em}th{background:#f6f6f6;font-weight:600}caption{text-align:left;margin-bottom:8px}</style>',
    '</head><body>',
    `<h1>Expert coverage — ${escapeHtml(title)}</h1>`,
    `<p>${coverage.tokens} tokens; ${mode}. Cells show tokens routed to each expert; red marks experts below an even share of their layer's routed tokens.</p>`,
    `<table><caption>Rows: MoE layers. Columns: experts.</caption><tr><th>layer</th>${header}</tr>`,
    ...rows,
    '</table>',
    '</body></html>',
    '',
  ].join('\n');
}

/** The `--coverage FILE` report: the HTML heat map when `path` ends in `.html`, else the JSON. */
export function coverageReport(path: string, coverage: ExpertCoverage, title: string): string {
  return path.endsWith('.html') ? coverageHtml(coverage, title) : `${JSON.stringify(coverage, null, 2)}\n`;
}
