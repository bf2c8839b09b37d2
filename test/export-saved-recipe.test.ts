/**
 * The recipe.yaml `apply` writes beside a checkpoint equals, byte for byte,
 * the one llm-compressor's `Recipe.yaml()` wrote for the same recipe: the
 * six serialized recipes of llm-compressor main (AWQ aside: its Python tag
 * for an unset offload_device is never written) and the recipe.yaml of every
 * data-free reference checkpoint.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileRecipe } from '../src/compile.js';
import { savedRecipeYaml } from '../src/export/saved-recipe.js';
import { memorySourceHost } from '../src/source-host.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const serialized = JSON.parse(readFileSync(join(FIXTURES, 'llm-compressor', 'serialized-recipes.json'), 'utf8')) as Record<
  string,
  { input: string; serialized: string }
>;

async function saved(input: string): Promise<string> {
  const compiled = await compileRecipe('recipe.yaml', memorySourceHost({ 'recipe.yaml': input }));
  expect(compiled.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return savedRecipeYaml(compiled.ir!);
}

describe('savedRecipeYaml against llm-compressor Recipe.yaml()', () => {
  for (const [name, fixture] of Object.entries(serialized)) {
    if (name.startsWith('awq')) continue;
    it(name, async () => {
      expect(await saved(fixture.input)).toBe(fixture.serialized);
    });
  }

  const refs = join(FIXTURES, 'datafree');
  for (const model of readdirSync(refs, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const scheme of readdirSync(join(refs, model.name), { withFileTypes: true }).filter((d) => d.isDirectory())) {
      const path = join(refs, model.name, scheme.name, 'recipe.yaml');
      if (!existsSync(path)) continue;
      it(`${model.name}/${scheme.name}/recipe.yaml re-serializes to itself`, async () => {
        const text = readFileSync(path, 'utf8');
        expect(await saved(text)).toBe(text);
      });
    }
  }
});
