import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { catalogTable } from './catalog-table.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

it('docs/moe.md carries the current catalog table', () => {
  expect(readFileSync(`${root}docs/moe.md`, 'utf8')).toContain(catalogTable());
});

it('every MoE diagnostic code is documented under "## MoE"', () => {
  const docs = readFileSync(`${root}docs/diagnostics.md`, 'utf8');
  const section = docs.slice(docs.indexOf('\n## MoE\n'));
  const sources = readdirSync(`${root}src/moe`).map((f) => readFileSync(`${root}src/moe/${f}`, 'utf8'));
  const codes = new Set(sources.flatMap((s) => [...s.matchAll(/(?:error|warning)\(\s*'([a-z-]+)'/g)].map((m) => m[1]!)));
  expect(codes.size).toBeGreaterThanOrEqual(8);
  for (const code of codes) expect(section).toContain(`### ${code}\n`);
});
