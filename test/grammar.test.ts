import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedArtefacts } from '../grammar/generate.js';
import { Lexer } from '../grammar/chevrotain.js';
import { RecipeParser, recipeParser } from '../grammar/parser.js';
import { allTokens } from '../grammar/tokens.js';
import { parseDsl, parseDslSyntax } from '../src/parse/dsl.js';
import { memorySourceHost } from '../src/source-host.js';

const ROOT = join(import.meta.dirname, '..');

describe('grammar self-checks', () => {
  it('has fresh generated artefacts (run "npm run gen" after changing the grammar)', () => {
    for (const [path, text] of Object.entries(generatedArtefacts())) {
      expect(readFileSync(join(ROOT, path), 'utf8'), path).toBe(text);
    }
  });

  it('passes the grammar and lexer validations of Chevrotain', () => {
    expect(() => new RecipeParser({ validate: true })).not.toThrow();
    expect(() => new Lexer([...allTokens], { positionTracking: 'onlyOffset' })).not.toThrow();
  });

  it('uses every token it defines', () => {
    const serialized = JSON.stringify(recipeParser().getSerializedGastProductions());
    const categories = new Set(['Name', 'Keyword']);
    const skipped = new Set(['WhiteSpace', 'Comment']);
    const unused = allTokens
      .map((t) => t.name)
      .filter((name) => !categories.has(name) && !skipped.has(name) && !serialized.includes(`"name":"${name}"`));
    expect(unused).toEqual([]);
  });

  it('never splits an identifier that starts with a keyword, and accepts keywords as names', () => {
    const text = 'stage stages { Modifier { groups = importance, group = models, recipes = [stage_1, argsx] } }';
    const r = parseDslSyntax({ path: 'k.qr', text });
    expect(r.diagnostics).toEqual([]);
    const doc = parseDsl({ path: 'k.qr', text }, memorySourceHost({})).value.document;
    expect(doc.stages[0]!.groups[0]!.modifiers[0]!.args).toEqual({
      groups: 'importance',
      group: 'models',
      recipes: ['stage_1', 'argsx'],
    });
  });
});
