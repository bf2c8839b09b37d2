/**
 * `quantc check FILE…`: compiles each recipe through validation and prints
 * its diagnostics. Exit 0 when clean or only warnings, 1 on errors, 2 when a
 * file cannot be read or the usage is wrong.
 */
import { compileRecipe } from '../../compile.js';
import { hasErrors } from '../../diagnostics.js';
import { diagnosticToJson, renderDiagnostics } from '../../report/diagnostics.js';
import { cwdSourceHost } from '../cwd-host.js';
import { choice, parseCommandArgs } from '../args.js';
import { EXIT_ERRORS, EXIT_OK, EXIT_USAGE, UsageError, type CliIo, type Command } from '../io.js';

const HELP = `Usage: quantc check FILE... [--format text|json]

Checks recipes (.qr, .yaml/.yml, .json, .md recipe cards): syntax, schema
and semantic rules. Prints every diagnostic.

Options:
  --format text|json  Output format (default text). JSON prints one object
                      {"files": [{"file", "diagnostics": [...]}]}.
  -h, --help          Show this help.

Exit status: 0 clean or warnings only, 1 errors, 2 bad usage or unreadable file.
`;

/** Codes meaning the file itself could not be read. */
const UNREADABLE = new Set(['file-unreadable', 'file-empty', 'file-binary', 'file-too-large']);

/** The `check` command. */
export const command: Command = {
  name: 'check',
  summary: 'Check recipes for errors',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('check', argv, { format: { type: 'string' } });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    const format = choice('check', 'format', values.format, ['text', 'json'] as const, 'text');
    if (positionals.length === 0) throw new UsageError('check: no recipe file given. See "quantc check --help".');
    let exit = EXIT_OK;
    const files: unknown[] = [];
    for (const file of positionals) {
      const result = await compileRecipe(file, cwdSourceHost(io.cwd));
      const unreadable = result.diagnostics.find((d) => UNREADABLE.has(d.code) && !d.span);
      if (unreadable && format === 'text') {
        io.stderr(`quantc: ${unreadable.message}\n`);
        exit = EXIT_USAGE;
        continue;
      }
      if (unreadable) exit = EXIT_USAGE;
      else if (hasErrors(result.diagnostics) && exit === EXIT_OK) exit = EXIT_ERRORS;
      if (format === 'json') files.push({ file, diagnostics: result.diagnostics.map((d) => diagnosticToJson(d, result.sources)) });
      else io.stdout(renderDiagnostics(result.diagnostics, result.sources));
    }
    if (format === 'json') io.stdout(`${JSON.stringify({ files }, null, 2)}\n`);
    return exit;
  },
};
