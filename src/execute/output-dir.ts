/**
 * Atomic output folders: everything is written into a temporary sibling of
 * the destination, renamed into place only when complete, and removed on
 * failure or Ctrl-C, so a half-written checkpoint never appears at `--out`.
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { rmSync } from 'node:fs';
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
      await rename(path, target);
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
