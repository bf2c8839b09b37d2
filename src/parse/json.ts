/**
 * The JSON recipe front end: `json.loads` + `Recipe.from_dict`. Syntax is
 * checked strictly as JSON; the tree (with spans and duplicate keys, where
 * Python's json keeps the last value too) is read through the YAML reader,
 * since JSON is YAML 1.2.
 */
import { error, type Result } from '../diagnostics.js';
import { span, type Source } from '../source.js';
import type { ParsedRecipe } from './document.js';
import { recipeDictOfIr } from './ir-json.js';
import { parseYamlText } from './yaml.js';

/** The JSON syntax error in `text`, if any, with its offset. */
export function jsonSyntaxError(text: string): { message: string; offset: number } | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (e) {
    const message = (e as Error).message;
    const m = /position (\d+)/.exec(message);
    return { message: message.replace(/ in JSON at position \d+.*$/s, '').replace(/\s*\(line \d+ column \d+\)$/, ''), offset: m ? Number(m[1]) : text.length };
  }
}

/** Parses a `.json` recipe. */
export function parseJson(source: Source): Result<ParsedRecipe | null> {
  const problem = jsonSyntaxError(source.text);
  if (problem) {
    const at = Math.min(problem.offset, Math.max(0, source.text.length - 1));
    return { value: null, diagnostics: [error('json-syntax', `${problem.message}.`, span(source.path, at, at + 1))] };
  }
  // An exported IR reads back as the recipe it describes (spans then point into that recipe's JSON form).
  const dict = recipeDictOfIr(JSON.parse(source.text));
  return parseYamlText(source, dict ? JSON.stringify(dict, null, 2) : source.text, 'json');
}
