/**
 * The recipe compiler's front half as one call: read → parse → validate →
 * IR. Each stage can also be called alone; this orchestrator only stops
 * after the first stage that reports an error.
 */
import { hasErrors, type Diagnostic } from './diagnostics.js';
import { buildIr } from './ir/build.js';
import type { RecipeIR } from './ir/types.js';
import type { RecipeDocument, SpanTable } from './parse/document.js';
import { parseRecipeFile } from './parse/index.js';
import type { SourceHost } from './source-host.js';
import { validateRecipe } from './validate/index.js';

/** Everything known about one compiled recipe; `ir` is null when any stage failed. */
export interface CompiledRecipe {
  readonly ir: RecipeIR | null;
  readonly document: RecipeDocument | null;
  readonly spans: SpanTable;
  /** Source texts by path, for code frames. */
  readonly sources: ReadonlyMap<string, string>;
  readonly diagnostics: readonly Diagnostic[];
}

/** Compiles the recipe file at `path`. */
export async function compileRecipe(path: string, host: SourceHost): Promise<CompiledRecipe> {
  const parsed = await parseRecipeFile(path, host);
  const none = { ir: null, spans: new Map(), sources: parsed.value?.sources ?? new Map<string, string>() };
  if (!parsed.value || hasErrors(parsed.diagnostics)) {
    return { ...none, document: parsed.value?.document ?? null, diagnostics: parsed.diagnostics };
  }
  const { document, spans, sources } = parsed.value;
  const diagnostics = [...parsed.diagnostics, ...validateRecipe(document, spans)];
  if (hasErrors(diagnostics)) return { ir: null, document, spans, sources, diagnostics };
  return { ir: buildIr(document, spans), document, spans, sources, diagnostics };
}
