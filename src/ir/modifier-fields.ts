/**
 * Each modifier's fields in pydantic declaration order with their defaults,
 * read from `schemas/recipe.schema.json` (the single source of both): the
 * order `Recipe.yaml()` dumps arguments in.
 */
import { existsSync, readFileSync } from 'node:fs';

/** One field: its name and default (`undefined` when it has none). */
export interface FieldSpec {
  readonly name: string;
  readonly default: unknown;
}

interface SchemaFile {
  readonly $defs: Readonly<Record<string, { properties?: Readonly<Record<string, { default?: unknown }>> }>>;
}

let cache: SchemaFile | undefined;

/** The recipe schema, found next to the package root (works from `src/` and `dist/src/`). */
export function recipeSchema(): SchemaFile {
  if (cache) return cache;
  for (const rel of ['../../schemas/recipe.schema.json', '../../../schemas/recipe.schema.json']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(url)) {
      cache = JSON.parse(readFileSync(url, 'utf8')) as SchemaFile;
      return cache;
    }
  }
  throw new Error('schemas/recipe.schema.json is missing from the installation.');
}

/** Fields of one modifier in declaration order. */
export function modifierFields(type: string): FieldSpec[] {
  const props = recipeSchema().$defs[type]?.properties ?? {};
  return Object.entries(props).map(([name, p]) => ({ name, default: p.default }));
}
