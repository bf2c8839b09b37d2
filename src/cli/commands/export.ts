/**
 * `quantc export FILE --to yaml|dsl|json [--out FILE]`: compiles a recipe and
 * writes it as llm-compressor YAML, as canonical quantc DSL, or as the IR in
 * JSON. Output files are written to a temporary file and renamed.
 */
import { resolve } from 'node:path';
import { compileRecipe } from '../../compile.js';
import { exportJson } from '../../export/json.js';
import { exportYaml } from '../../export/yaml.js';
import { renderDiagnostics } from '../../report/diagnostics.js';
import { choice, parseCommandArgs } from '../args.js';
import { cwdSourceHost } from '../cwd-host.js';
import { EXIT_ERRORS, EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';
import { writeFileAtomic } from '../write-output.js';

const HELP = `Usage: quantc export FILE --to yaml|dsl|json [--out FILE]

Compiles a recipe and writes it in another form:
  yaml  llm-compressor recipe YAML (Recipe.from_dict loads the same modifiers
        and arguments; defaults written out like Recipe.yaml())
  dsl   canonical quantc DSL
  json  the validated IR as JSON

Options:
  --to yaml|dsl|json  Output form (required).
  --out FILE          Write to FILE instead of standard output.
  -h, --help          Show this help.

Exit status: 0 written (warnings allowed), 1 recipe errors, 2 bad usage or unreadable file.
`;

/** The `export` command. */
export const command: Command = {
  name: 'export',
  summary: 'Export a recipe as llm-compressor YAML, quantc DSL or IR JSON',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('export', argv, { to: { type: 'string' }, out: { type: 'string' } });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    if (values.to === undefined) throw new UsageError('export: --to yaml|dsl|json is required. See "quantc export --help".');
    const to = choice('export', 'to', values.to, ['yaml', 'dsl', 'json'] as const, 'yaml');
    if (positionals.length !== 1) throw new UsageError('export: give exactly one recipe file. See "quantc export --help".');
    const file = positionals[0]!;
    const result = await compileRecipe(file, cwdSourceHost(io.cwd));
    const unreadable = result.diagnostics.find((d) => d.code.startsWith('file-') && !d.span);
    if (unreadable) throw new UsageError(unreadable.message);
    if (!result.ir || !result.document) {
      io.stderr(renderDiagnostics(result.diagnostics, result.sources));
      return EXIT_ERRORS;
    }
    let text: string;
    const diagnostics = [...result.diagnostics];
    if (to === 'yaml') {
      const yaml = exportYaml(result.ir, result.document);
      diagnostics.push(...yaml.diagnostics);
      text = yaml.value;
    }
    else if (to === 'json') text = exportJson(result.ir, result.sources);
    else text = (await import('../../format/print-dsl.js')).printDsl(result.document);
    io.stderr(renderDiagnostics(diagnostics, result.sources));
    if (typeof values.out === 'string') {
      const inputs = [...result.sources.keys()].map((p) => resolve(io.cwd, p));
      writeFileAtomic(resolve(io.cwd, values.out), text, inputs);
    } else io.stdout(text);
    return EXIT_OK;
  },
};

