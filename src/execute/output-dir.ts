/**
 * Atomic output folders: everything is written into a temporary sibling of
 * the destination, renamed into place only when complete, and removed on
 * failure or Ctrl-C, so a half-written checkpoint never appears at `--out`.
 */
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { accessSync, constants, existsSync, rmSync, statfsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** A temporary folder that becomes `dest` on commit. */
export interface StagedDir {
  /** Where to write files now. */
  readonly path: string;
  /** Renames the folder to its destination. */
  commit(): Promise<void>;
  /** Removes the temporary folder (safe to call twice). */
  discard(): Promise<void>;
}

/** The destination already exists; `apply` never overwrites. */
export class OutputExistsError extends Error {}

/**
 * Why `dest` cannot receive an output folder of about `bytes` bytes, or
 * null: checked before any work, so that hours of calibration are never
 * lost to a path typo, a read-only folder or a full disk. The nearest
 * existing ancestor must be a writable folder with room for the output.
 */
export function outputProblem(dest: string, bytes: number): string | null {
  const target = resolve(dest);
  if (existsSync(target)) return `${dest} already exists; choose a new --out folder`;
  let ancestor = dirname(target);
  while (!existsSync(ancestor) && dirname(ancestor) !== ancestor) ancestor = dirname(ancestor);
  if (!statSync(ancestor).isDirectory()) return `${dest}: ${ancestor} is a file, not a folder`;
  try {
    accessSync(ancestor, constants.W_OK);
  } catch {
    return `${dest}: ${ancestor} is not writable`;
  }
  try {
    const fs = statfsSync(ancestor);
    const free = fs.bavail * fs.bsize;
    if (free < bytes) return `${dest}: ${ancestor} has ${(free / 1e9).toFixed(1)} GB free, and the output needs about ${(bytes / 1e9).toFixed(1)} GB`;
  } catch {
    // No statfs on this platform: the write itself will tell.
  }
  return null;
}

/** Whether process `pid` is alive on this machine. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary folders an earlier run into `dest` left behind when
 * it was killed (SIGKILL, power loss: no cleanup ran) and returns their
 * names. A folder of a process still running is left alone.
 */
export async function removeStaleStages(dest: string): Promise<string[]> {
  const target = resolve(dest);
  const prefix = `.${basename(target)}.quantc-tmp-`;
  let entries: string[];
  try {
    entries = await readdir(dirname(target));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of entries) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    await rm(join(dirname(target), name), { recursive: true, force: true });
    removed.push(join(dirname(target), name));
  }
  return removed;
}

/** Creates the temporary folder next to `dest` and arms the SIGINT/SIGTERM cleanup. */
export async function stageOutputDir(dest: string): Promise<StagedDir> {
  const target = resolve(dest);
  const exists = await stat(target).then(
    () => true,
    () => false,
  );
  if (exists) throw new OutputExistsError(`${dest} already exists; choose a new --out folder`);
  await mkdir(dirname(target), { recursive: true });
  const path = join(dirname(target), `.${basename(target)}.quantc-tmp-${process.pid}`);
  await rm(path, { recursive: true, force: true });
  await mkdir(path);
  let done = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    rmSync(path, { recursive: true, force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const disarm = (): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
  return {
    path,
    async commit() {
      if (done) return;
      // Another run into the same --out may have finished first: never replace its output.
      const taken = await stat(target).then(
        () => true,
        () => false,
      );
      if (taken) throw new OutputExistsError(`${dest} appeared while this run was writing it (another run into the same --out?); this run's output is discarded`);
      try {
        await rename(path, target);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new OutputExistsError(`${dest} appeared while this run was writing it (another run into the same --out?); this run's output is discarded`);
        throw e;
      }
      done = true;
      disarm();
    },
    async discard() {
      if (done) return;
      done = true;
      disarm();
      await rm(path, { recursive: true, force: true });
    },
  };
}

/**
 * The user-facing message for a file-system failure while writing `outDir`
 * (a full disk, a read-only or vanished folder), or null for any other error.
 */
export function writeFailure(e: unknown, outDir: string): string | null {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const why: Record<string, string> = {
    ENOSPC: 'the disk is full',
    EDQUOT: 'the disk quota is exhausted',
    EROFS: 'the file system is read-only',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EIO: 'an I/O error',
    ENOENT: 'the output folder vanished',
  };
  return code && why[code] ? `writing ${outDir} failed: ${why[code]} (${(e as Error).message}); nothing was written` : null;
}
