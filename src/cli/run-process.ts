/**
 * One CLI invocation as a process: the process's streams as its I/O, its
 * result as the exit code, a closed stdout (`quantc … | head`) as a quiet
 * end, and anything that should never happen as one line instead of a stack
 * trace. Shared by the plain entry point and the startup-snapshot one.
 */
import type { CliIo } from './io.js';

/** Exit code for an internal error (EX_SOFTWARE). */
const EXIT_INTERNAL = 70;

let stdoutWatched = false;

/**
 * Writes to stdout. The stream is created on the first non-empty write, not
 * before: a clean `check` prints nothing and so never pays for it.
 */
function writeStdout(text: string): void {
  if (text === '') return;
  if (!stdoutWatched) {
    stdoutWatched = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  process.stdout.write(text);
}

/** Default I/O: the process's streams. */
export function processIo(): CliIo {
  return {
    stdout: writeStdout,
    stderr: (t) => process.stderr.write(t),
    cwd: process.cwd(),
    get isTty() {
      return Boolean(process.stdout.isTTY);
    },
  };
}

/** Runs `run` on the command-line arguments `argv` and sets the process's exit code from it. */
export async function runProcess(argv: readonly string[], run: (argv: readonly string[]) => Promise<number>): Promise<void> {
  try {
    process.exitCode = await run(argv);
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`quantc: internal error: ${err.message}\n`);
    if (process.env.QUANTC_DEBUG) process.stderr.write(`${err.stack ?? ''}\n`);
    else process.stderr.write('quantc: this is a bug in quantc; run again with QUANTC_DEBUG=1 for details.\n');
    process.exitCode = EXIT_INTERNAL;
  }
}
