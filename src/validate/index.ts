/**
 * Validation of a recipe document: the JSON Schema first (types, names,
 * enums), then the semantic rules, which assume a schema-valid document.
 */
import { hasErrors, type Diagnostic } from '../diagnostics.js';
import type { RecipeDocument, SpanTable } from '../parse/document.js';
import { ruleContext } from './context.js';
import { RULES } from './rules/index.js';
import { validateSchema } from './schema.js';

/** Every schema and semantic diagnostic for a document; rules run only when the schema passes. */
export function validateRecipe(document: RecipeDocument, spans: SpanTable): Diagnostic[] {
  const schema = validateSchema(document, spans);
  if (hasErrors(schema)) return schema;
  const ctx = ruleContext(document, spans);
  return [...schema, ...RULES.flatMap((rule) => rule(ctx))];
}
