/**
 * What a CLI command may touch: output streams and the working directory.
 * Commands write through this so tests can run them in-process.
 */

/** Output sinks and environment for one CLI invocation. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly cwd: string;
  /** Whether stdout is a terminal (progress bars, colours). */
  readonly isTty: boolean;
  /** Environment variables (the Hugging Face cache, endpoint, token); the process's when absent. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Exit codes: 0 ok (warnings allowed), 1 diagnostics with errors, 2 bad usage or unreadable input. */
export const EXIT_OK = 0;
export const EXIT_ERRORS = 1;
export const EXIT_USAGE = 2;

/** Raised by argument parsing; main prints `quantc: <message>` and exits 2. */
export class UsageError extends Error {}

/** One subcommand. */
export interface Command {
  readonly name: string;
  /** One line for `quantc --help`. */
  readonly summary: string;
  /** Full `--help` text. */
  readonly help: string;
  run(argv: readonly string[], io: CliIo): Promise<number>;
}
