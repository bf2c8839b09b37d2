/**
 * Chevrotain, loaded from its single-file bundle. The package's `exports`
 * entry point is an ES module graph of several hundred files (its lodash-es
 * dependency), which costs about a second to load on a busy machine; the
 * bundle it ships next to it loads in tens of milliseconds, which keeps
 * `quantc check` within its cold-start budget. Falls back to the package
 * entry point when the bundle is not where this version puts it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

type Chevrotain = typeof import('chevrotain');

async function load(): Promise<Chevrotain> {
  const entry = createRequire(import.meta.url).resolve('chevrotain');
  const bundle = join(entry, '..', '..', 'chevrotain.min.mjs');
  if (existsSync(bundle)) return (await import(pathToFileURL(bundle).href)) as Chevrotain;
  return import('chevrotain');
}

const chevrotain = await load();

/** The parts of Chevrotain's API the grammar and front end use. */
export const { createToken, createSyntaxDiagramsCode, CstParser, EOF, generateCstDts, Lexer, tokenLabel } = chevrotain;
