/**
 * Writes a command's output file so that it is never half-written: the text
 * goes to a temporary file in the same folder, which is then renamed over
 * the destination (an atomic replace on the same file system).
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UsageError } from './io.js';

/** Writes `text` to `path` atomically; a failure is a UsageError naming the file (exit 2). */
export function writeFileAtomic(path: string, text: string): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSync(temp, text, { flag: 'wx' });
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw new UsageError(`cannot write "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
}
