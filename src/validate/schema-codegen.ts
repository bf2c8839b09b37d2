/**
 * Generates `validators.generated.ts`: AJV standalone validators for every
 * modifier's arguments and for the `recipe`/`moe` settings, compiled from
 * `schemas/recipe.schema.json` ahead of time so `quantc check` never loads or
 * compiles AJV at run time. Run `node dist/src/validate/schema-codegen.js`
 * after editing the schema; a test fails while the file is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import standaloneCode from 'ajv/dist/standalone/index.js';

/** Schema definitions compiled into validators, by export name. */
export function validatorNames(schema: { $defs: Record<string, unknown> }): string[] {
  return Object.keys(schema.$defs)
    .filter((n) => n.endsWith('Modifier') && n !== 'Modifier')
    .concat(['RecipeHeader', 'Moe']);
}

/** The TypeScript source of the generated validators module. */
export function generateValidatorSource(schema: { $id: string; $defs: Record<string, unknown> }): string {
  const ajv = new Ajv2020.default({ allErrors: true, strict: false, verbose: true, code: { source: true, esm: true } });
  ajv.addSchema(schema);
  const exports = Object.fromEntries(validatorNames(schema).map((n) => [n, `${schema.$id}#/$defs/${n}`]));
  const code = standaloneCode.default(ajv, exports);
  return `// @ts-nocheck\n// Generated from schemas/recipe.schema.json by src/validate/schema-codegen.ts. Do not edit.\n${code}\n`;
}

const SCHEMA_URL = new URL('../../../schemas/recipe.schema.json', import.meta.url);
const OUTPUT_URL = new URL('../../../src/validate/validators.generated.ts', import.meta.url);

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as { $id: string; $defs: Record<string, unknown> };
  writeFileSync(OUTPUT_URL, generateValidatorSource(schema));
}
