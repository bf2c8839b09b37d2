/**
 * Runs one subcommand: a `UsageError` becomes the one-line `quantc: reason`
 * on stderr and exit 2; every other error propagates to the process entry.
 */
import { EXIT_USAGE, UsageError, type CliIo, type Command } from './io.js';

/** Runs `command` on its own arguments (the command name already removed) and returns the exit code. */
export async function runCommand(command: Command, argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await command.run(argv, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`quantc: ${e.message}\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
}
