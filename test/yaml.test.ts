import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileRecipe } from '../src/compile.js';
import { exportJson } from '../src/export/json.js';
import { compactDiagnostic } from '../src/report/diagnostics.js';
import { nodeSourceHost } from '../src/source-host.js';

const root = new URL('./cases/yaml/', import.meta.url);

/** Golden cases: each folder holds one recipe, its expected diagnostics, and its IR when it compiles. */
describe('YAML/JSON/recipe-card front end (golden cases)', () => {
  for (const name of readdirSync(root).sort()) {
    const dir = new URL(`${name}/`, root);
    const input = readdirSync(dir).find((f) => !f.startsWith('expected'))!;
    it(name, async () => {
      const path = `test/cases/yaml/${name}/${input}`;
      const result = await compileRecipe(path, nodeSourceHost);
      const diagnostics = result.diagnostics.map((d) => compactDiagnostic(d, result.sources)).join('\n');
      await expect(`${diagnostics}\n`).toMatchFileSnapshot(new URL('expected.diagnostics.txt', dir).pathname);
      if (result.ir) await expect(exportJson(result.ir, result.sources)).toMatchFileSnapshot(new URL('expected.ir.json', dir).pathname);
    });
  }
});
