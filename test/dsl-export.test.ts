import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printDsl } from '../src/format/print-dsl.js';
import { parseDsl } from '../src/parse/dsl.js';
import { parseRecipeFile } from '../src/parse/index.js';
import { memorySourceHost, nodeSourceHost } from '../src/source-host.js';

const RECIPES = join(import.meta.dirname, '..', 'recipes');

describe('printDsl on real recipes', () => {
  const files = readdirSync(RECIPES).filter((f) => /\.(ya?ml|qr)$/.test(f)).sort();

  it.each(files)('%s: print → parse gives the same document, and printing is stable', async (file) => {
    const parsed = await parseRecipeFile(join(RECIPES, file), nodeSourceHost);
    expect(parsed.value).not.toBeNull();
    const doc = parsed.value!.document;
    const printed = printDsl(doc);
    const reparsed = parseDsl({ path: 'exported.qr', text: printed }, memorySourceHost({}));
    expect(reparsed.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(reparsed.value.document).toEqual(doc);
    expect(printDsl(reparsed.value.document)).toBe(printed);
  });
});
