/**
 * Writes the grammar's generated artefacts: `grammar/cst.d.ts` (typed CST
 * children for the visitor) and `docs/grammar.html` (railroad diagrams).
 * Run by `npm run gen`; a test fails when the committed files are stale.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSyntaxDiagramsCode, generateCstDts } from './chevrotain.js';
import { RecipeParser } from './parser.js';

/** The generated files' contents, keyed by path relative to the repository root. */
export function generatedArtefacts(): Record<string, string> {
  const parser = new RecipeParser({ validate: true });
  const productions = parser.getGAstProductions();
  return {
    'grammar/cst.d.ts': generateCstDts(productions, { visitorInterfaceName: 'RecipeCstVisitor' }),
    'docs/grammar.html': createSyntaxDiagramsCode(parser.getSerializedGastProductions()),
  };
}

/** The repository root, from `dist/grammar/` or `grammar/`. */
function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.split(/[\\/]/).includes('dist') ? join(here, '..', '..') : join(here, '..');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [path, text] of Object.entries(generatedArtefacts())) {
    writeFileSync(join(repoRoot(), path), text);
    process.stdout.write(`wrote ${path}\n`);
  }
}
