/**
 * Recipes of ordinary size are lexed without Chevrotain's first-character
 * optimization (it costs more to set up than they take to lex); large ones
 * with it. Both must read every file the same way.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDsl } from '../src/parse/dsl.js';
import { memorySourceHost } from '../src/source-host.js';

const ROOT = join(import.meta.dirname, '..');
const files = [
  ...readdirSync(join(ROOT, 'recipes')).filter((f) => f.endsWith('.qr')).map((f) => join('recipes', f)),
  join('test', 'cases', 'dsl', 'kitchen-sink', 'input.qr'),
];

describe.each(files)('%s', (file) => {
  it('parses to the same document with the optimized lexer (file padded past 64 KiB)', () => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const padded = `${'#'.repeat(70 * 1024)}\n${text}`;
    const small = parseDsl({ path: 'a.qr', text }, memorySourceHost({}));
    const large = parseDsl({ path: 'a.qr', text: padded }, memorySourceHost({}));
    expect(small.diagnostics).toEqual([]);
    expect(large.diagnostics).toEqual([]);
    expect(large.value?.document).toEqual(small.value?.document);
  });
});
