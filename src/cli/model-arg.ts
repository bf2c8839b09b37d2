/**
 * `--model` as every command takes it: a path (relative to the working
 * directory), or a model id `org/name[@revision]` resolved through the
 * Hugging Face cache, a bundled config, or the Hub (`resolve-model-ref.ts`).
 */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Diagnostic } from '../diagnostics.js';
import { resolveModelRef, type ModelFiles } from '../model/resolve-model-ref.js';
import type { CliIo } from './io.js';

/** The local path `arg` stands for (or `arg` itself for a bundled id or a path that does not exist), or why the model cannot be had. */
export async function modelPathForCli(arg: string, need: ModelFiles, io: CliIo): Promise<string | Diagnostic> {
  // A relative path that exists is a path; anything else may be a model id.
  if (isAbsolute(arg) || existsSync(resolve(io.cwd, arg))) return resolve(io.cwd, arg);
  const found = await resolveModelRef(arg, { need, env: io.env ?? process.env, progress: io.stderr, isTty: io.isTty });
  if (found === undefined) return arg;
  return 'path' in found ? found.path : found;
}
