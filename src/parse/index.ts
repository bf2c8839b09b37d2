/**
 * Picks the front end for a recipe file by its extension, as llm-compressor
 * does: `.qr` → quantc DSL, `.yaml`/`.yml` → YAML, `.json` → JSON, `.md` →
 * recipe-card front matter, anything else → JSON, then YAML. Front ends are
 * loaded on demand so checking a `.qr` file never loads the YAML library.
 */
import { isDiagnostic, type SourceHost } from '../source-host.js';
import type { Diagnostic, Result } from '../diagnostics.js';
import type { Source } from '../source.js';
import type { ParsedRecipe } from './document.js';

/** Which front end reads a file. */
export type RecipeSyntax = 'dsl' | 'yaml' | 'json' | 'card';

/** The front end for `path`; `undefined` means "try JSON, then YAML". */
export function syntaxOf(path: string): RecipeSyntax | undefined {
  const ext = /\.[^./\\]+$/.exec(path)?.[0].toLowerCase();
  if (ext === '.qr') return 'dsl';
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  if (ext === '.json') return 'json';
  if (ext === '.md') return 'card';
  return undefined;
}

/** Parses one already-read source with the front end its extension selects. */
export async function parseRecipeSource(source: Source, host: SourceHost): Promise<Result<ParsedRecipe | null>> {
  switch (syntaxOf(source.path)) {
    case 'dsl':
      return (await import('./dsl.js')).parseDsl(source, host);
    case 'yaml':
      return (await import('./yaml.js')).parseYaml(source);
    case 'json':
      return (await import('./json.js')).parseJson(source);
    case 'card':
      return (await import('./recipe-card.js')).parseRecipeCard(source);
    default: {
      const json = await import('./json.js');
      const result = json.jsonSyntaxError(source.text) ? await (await import('./yaml.js')).parseYaml(source) : json.parseJson(source);
      const first = result.diagnostics.findIndex((d) => d.severity === 'error');
      if (first < 0 || !LOOKS_LIKE_DSL.test(source.text)) return result;
      return { ...result, diagnostics: result.diagnostics.map((d, i) => (i === first ? withDslHint(d) : d)) };
    }
  }
}

/** A file whose first statement opens like the quantc DSL (after blank and comment lines). */
const LOOKS_LIKE_DSL = /^(?:\s*(?:#[^\n]*)?\n)*\s*(?:recipe|stage|import|let|model|moe)\s+["\w{]/;

/** Tells why DSL text read as YAML or JSON fails: the extension, not the text, picks the front end. */
function withDslHint(d: Diagnostic): Diagnostic {
  return { ...d, notes: [...(d.notes ?? []), { message: 'This looks like a quantc DSL recipe; quantc reads the DSL only from files ending in ".qr".' }] };
}

/** Reads and parses a recipe file; an unreadable file yields its diagnostic and no value. */
export async function parseRecipeFile(path: string, host: SourceHost): Promise<Result<ParsedRecipe | null>> {
  const source = host.read(path);
  if (isDiagnostic(source)) return { value: null, diagnostics: [source] };
  return parseRecipeSource(source, host);
}
