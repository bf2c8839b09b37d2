#!/usr/bin/env node
/**
 * The `quantc` executable: runs the CLI and turns what should never happen
 * into one line instead of a stack trace. A closed stdout (`quantc … | head`)
 * ends the process quietly.
 */
import { main } from './main.js';

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  const err = e as Error;
  process.stderr.write(`quantc: internal error: ${err.message}\n`);
  if (process.env.QUANTC_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
  else process.stderr.write('quantc: this is a bug in quantc; run again with QUANTC_DEBUG=1 for details.\n');
  process.exitCode = 70;
}
