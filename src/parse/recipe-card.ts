/**
 * Recipe cards: Markdown files whose YAML front matter, between `---` (or
 * `+++`) delimiter lines at the top, is the recipe. Everything outside the
 * front matter is blanked to spaces so spans keep their file offsets.
 */
import { error, type Result } from '../diagnostics.js';
import { span, type Source } from '../source.js';
import type { ParsedRecipe } from './document.js';
import { parseYamlText } from './yaml.js';

const FRONT_MATTER = /^(---|\+\+\+)[ \t]*\r?\n([\s\S]*?)^(?:---|\+\+\+)[ \t]*$/m;

/** Parses the front matter of a `.md` recipe card. */
export function parseRecipeCard(source: Source): Result<ParsedRecipe | null> {
  const m = FRONT_MATTER.exec(source.text);
  if (!m || m.index !== 0) {
    const d = error('recipe-card-no-front-matter', `The recipe card "${source.path}" has no YAML front matter between "---" lines.`, span(source.path, 0, Math.min(3, source.text.length)));
    return { value: null, diagnostics: [d] };
  }
  const bodyStart = m[0].indexOf('\n') + 1;
  const bodyEnd = bodyStart + m[2]!.length;
  const blank = (s: string): string => s.replace(/[^\n]/g, ' ');
  const text = blank(source.text.slice(0, bodyStart)) + source.text.slice(bodyStart, bodyEnd) + blank(source.text.slice(bodyEnd));
  return parseYamlText(source, text, 'yaml');
}
