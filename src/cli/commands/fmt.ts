/**
 * `quantc fmt FILE [--write | --check]`: prints a `.qr` recipe in canonical
 * form, keeping its comments. `--write` replaces the file through a
 * temporary file and a rename, so it is never left half-written.
 */
import { resolve } from 'node:path';
import { formatDsl } from '../../format/print-dsl.js';
import { syntaxOf } from '../../parse/index.js';
import { renderDiagnostics } from '../../report/diagnostics.js';
import { isDiagnostic } from '../../source-host.js';
import { parseCommandArgs } from '../args.js';
import { cwdSourceHost } from '../cwd-host.js';
import { EXIT_ERRORS, EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';
import { replaceFileAtomic } from '../write-output.js';

const HELP = `Usage: quantc fmt FILE [--write | --check]

Formats a quantc recipe (.qr) canonically: two-space indent, one entry per
line, short lists on one line. Comments are kept.

Options:
  --write      Replace FILE with the formatted text (atomically).
  --check      Print nothing; exit 1 and name FILE when it is not formatted.
  -h, --help   Show this help.

Without options the formatted text goes to standard output.
Exit status: 0 ok, 1 syntax errors or (with --check) not formatted, 2 bad usage or unreadable file.
`;

/** The `fmt` command. */
export const command: Command = {
  name: 'fmt',
  summary: 'Format a .qr recipe canonically, keeping comments',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('fmt', argv, { write: { type: 'boolean' }, check: { type: 'boolean' } });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    if (positionals.length !== 1) throw new UsageError('fmt: give exactly one recipe file. See "quantc fmt --help".');
    if (values.write && values.check) throw new UsageError('fmt: --write and --check cannot be used together.');
    const file = positionals[0]!;
    if (syntaxOf(file) !== 'dsl') throw new UsageError(`fmt: "${file}" is not a .qr recipe; only the quantc DSL is formatted.`);
    const source = cwdSourceHost(io.cwd).read(file);
    if (isDiagnostic(source)) throw new UsageError(source.message);
    const result = formatDsl(source);
    if (result.value === undefined) {
      io.stderr(renderDiagnostics(result.diagnostics, new Map([[source.path, source.text]])));
      return EXIT_ERRORS;
    }
    if (values.check) {
      if (result.value === source.text) return EXIT_OK;
      io.stderr(`${file} is not formatted. Run "quantc fmt --write ${file}".\n`);
      return EXIT_ERRORS;
    }
    if (!values.write) {
      io.stdout(result.value);
      return EXIT_OK;
    }
    if (result.value !== source.text) replaceFileAtomic(resolve(io.cwd, file), result.value);
    return EXIT_OK;
  },
};
