/** A CLI I/O that records stdout and stderr, for running commands in process. */
import type { CliIo } from '../src/cli/io.js';

/** Runs in `cwd`, not a terminal; what the command writes is kept in `out` and `err`. */
export function memoryIo(cwd: string): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, cwd, isTty: false, stdout: (t) => void out.push(t), stderr: (t) => void err.push(t) };
}
