/**
 * The recipe compiler's front half as one call: read → parse → validate →
 * IR. Each stage can also be called alone; this orchestrator only stops
 * after the first stage that reports an error.
 */
import { hasErrors, type Diagnostic } from './diagnostics.js';
import { buildIr } from './ir/build.js';
import type { RecipeIR } from './ir/types.js';
import type { RecipeDocument, SpanTable } from './parse/document.js';
import { parseRecipeSource } from './parse/index.js';
import { isDiagnostic, type SourceHost } from './source-host.js';
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
  const source = host.read(path);
  if (isDiagnostic(source)) return { ir: null, document: null, spans: new Map(), sources: new Map(), diagnostics: [source] };
  const parsed = await parseRecipeSource(source, host);
  const sources = parsed.value?.sources ?? new Map([[source.path, source.text]]);
  if (!parsed.value || hasErrors(parsed.diagnostics)) {
    return { ir: null, document: parsed.value?.document ?? null, spans: parsed.value?.spans ?? new Map(), sources, diagnostics: inSourceOrder(parsed.diagnostics) };
  }
  const { document, spans } = parsed.value;
  const diagnostics = inSourceOrder([...parsed.diagnostics, ...validateRecipe(document, spans)]);
  if (hasErrors(diagnostics)) return { ir: null, document, spans, sources, diagnostics };
  return { ir: buildIr(document, spans), document, spans, sources, diagnostics };
}

/** Diagnostics sorted by file and position (stable; those without a span first). */
export function inSourceOrder(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => {
    if (!a.span || !b.span) return (a.span ? 1 : 0) - (b.span ? 1 : 0);
    return a.span.path === b.span.path ? a.span.start - b.span.start : a.span.path < b.span.path ? -1 : 1;
  });
}
