/**
 * Writes a command's output file so that it is never half-written: the text
 * goes to a temporary file in the same folder, which is then renamed over
 * the destination (an atomic replace on the same file system).
 */
import { realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UsageError } from './io.js';

/** `path` with symlinks resolved where it exists, else as given. */
function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * Writes `text` to the absolute `path` atomically; a failure is a UsageError naming the file (exit 2).
 * `inputs` are absolute paths the command read: writing over one of them is refused, since the
 * rename would destroy the user's input.
 */
export function writeFileAtomic(path: string, text: string, inputs: readonly string[] = []): void {
  const target = canonical(path);
  if (inputs.some((input) => canonical(input) === target)) throw new UsageError(`cannot write "${path}": it is an input file.`);
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSync(temp, text, { flag: 'wx' });
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw new UsageError(`cannot write "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
}
