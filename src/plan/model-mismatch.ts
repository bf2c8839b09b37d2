/**
 * A recipe's `model "org/name"` header against the model it is planned on:
 * a recipe written for one architecture and run on another keeps its
 * patterns and ignores, which then match other modules or none.
 */
import { warning, type Diagnostic } from '../diagnostics.js';
import { bundledConfig } from '../model/hub.js';
import type { Span } from '../source.js';

/** The `model_type` a bundled model id has, or undefined for ids quantc does not bundle. */
function bundledModelType(id: string): string | undefined {
  const config = bundledConfig(id);
  if (!config) return undefined;
  const type = (JSON.parse(config.text) as { model_type?: unknown }).model_type;
  return typeof type === 'string' ? type : undefined;
}

/**
 * A `plan-model-mismatch` warning when the recipe names a bundled model
 * whose architecture differs from the one `--model` loaded. Another folder
 * or id of the same architecture (a local copy, a fine-tune) is fine, and
 * ids quantc does not bundle cannot be checked offline.
 */
export function checkModelHeader(recipeModel: string | null, modelArg: string, loadedType: string, span: Span | undefined): Diagnostic[] {
  if (recipeModel === null || recipeModel === modelArg) return [];
  const expected = bundledModelType(recipeModel);
  if (expected === undefined || expected === loadedType) return [];
  return [
    warning(
      'plan-model-mismatch',
      `The recipe is written for "${recipeModel}" (${expected}), but --model "${modelArg}" is a ${loadedType || 'different'} model: its targets and ignore patterns were chosen for another module tree.`,
      span,
    ),
  ];
}
