/**
 * Paths a saved plan records (`quantc plan --save`): the recipe, and the
 * model when it is a local path, relative to the plan file's folder. Plans
 * saved by older versions recorded them relative to the folder they were
 * saved from; those are found from there.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** A recorded path: beside the plan file when it exists there, else relative to `cwd`. */
export function planPath(planFile: string, recorded: string, cwd: string): string {
  const beside = resolve(dirname(planFile), recorded);
  return existsSync(beside) ? beside : resolve(cwd, recorded);
}

/** The recorded model: a local path resolved beside the plan file when it exists there, else as recorded (a bundled id). */
export function planModel(planFile: string, recorded: string): string {
  const beside = resolve(dirname(planFile), recorded);
  return existsSync(beside) ? beside : recorded;
}
