/**
 * Writes a command's output file so that it is never half-written: the text
 * goes to a temporary file in the same folder, which is then renamed over
 * the destination (an atomic replace on the same file system).
 */
import { accessSync, chmodSync, constants, existsSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UsageError } from './io.js';

/** Plain words for the errors a write usually meets; anything else keeps its code. */
const WRITE_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'its folder does not exist',
  ENOTDIR: 'its folder does not exist',
  EISDIR: 'it is a folder',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOSPC: 'the disk is full',
};

/** The UsageError for a failed write of `path`. */
function writeError(path: string, e: unknown): UsageError {
  const code = (e as NodeJS.ErrnoException).code;
  const reason = (code !== undefined ? WRITE_ERRORS[code] : undefined) ?? code ?? (e as Error).message;
  return new UsageError(`cannot write "${path}": ${reason}.`);
}

/**
 * Why a file cannot be written at `path` later (its folder missing, a file,
 * or read-only; the path a folder), or null: for outputs written after long
 * work (`--coverage`), checked before the work starts.
 */
export function fileOutputProblem(path: string): string | null {
  const dir = dirname(path);
  if (existsSync(path) && statSync(path).isDirectory()) return `${path} is a folder`;
  if (!existsSync(dir)) return `the folder ${dir} does not exist`;
  if (!statSync(dir).isDirectory()) return `${dir} is not a folder`;
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    return `the folder ${dir} is not writable`;
  }
  return null;
}

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
    throw writeError(path, e);
  }
}

/**
 * Replaces the existing file at the absolute `path` with `text` atomically, as `fmt --write` does:
 * a symlink is followed (the link stays a link), the file's mode is kept, and a read-only file is
 * refused rather than silently replaced (a rename ignores the file's own permissions).
 */
export function replaceFileAtomic(path: string, text: string): void {
  const target = canonical(path);
  let mode: number;
  try {
    mode = statSync(target).mode & 0o7777;
  } catch (e) {
    throw writeError(path, e);
  }
  if ((mode & 0o222) === 0) throw new UsageError(`cannot write "${path}": it is read-only.`);
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${Date.now()}.tmp`);
  try {
    writeFileSync(temp, text, { flag: 'wx', mode });
    chmodSync(temp, mode);
    renameSync(temp, target);
  } catch (e) {
    rmSync(temp, { force: true });
    throw writeError(path, e);
  }
}
