/**
 * `quantc merge PART... --out DIR`: assembles the part folders written by
 * `apply --shard I/N` into the checkpoint one `apply` would have written,
 * after checking that every part of one run is there exactly once.
 */
import { resolve } from 'node:path';
import { error } from '../../diagnostics.js';
import { renderDiagnostics } from '../../report/diagnostics.js';
import { choice, parseCommandArgs } from '../args.js';
import { EXIT_ERRORS, EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';

const HELP = `Usage: quantc merge PART... --out DIR [--format text|json]

Merges the part folders written by \`quantc apply --shard I/N\` (one per
part, all N of one run, in any order) into one compressed-tensors
checkpoint: the same shard files, index, config.json and other files a
single \`apply\` writes, byte for byte. Checks first that the parts come
from the same recipe, model, options and quantc version, that no part is
missing or given twice, and that every tensor is there once with its
promised dtype and shape. The output is written to a temporary folder
next to --out and renamed into place when complete; --out must not exist.

Options:
  --out DIR           Output folder (must not exist).
  --format text|json  The summary on stdout (default text).
  -h, --help          Show this help.

Exit status: 0 written, 1 parts missing, duplicated or from different
runs, or the output could not be written (nothing is left at --out),
2 bad usage or unreadable part folder.
`;

/** The `merge` command. */
export const command: Command = {
  name: 'merge',
  summary: 'Merge the parts written by `apply --shard I/N` into one checkpoint',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('merge', argv, { out: { type: 'string' }, format: { type: 'string' } });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    const format = choice('merge', 'format', values.format, ['text', 'json'] as const, 'text');
    if (positionals.length === 0) throw new UsageError('merge: no part folders given. See "quantc merge --help".');
    if (typeof values.out !== 'string') throw new UsageError('merge: --out DIR is required.');
    const { outputProblem } = await import('../../execute/output-dir.js');
    const problem = outputProblem(resolve(io.cwd, values.out), 0);
    if (problem) throw new UsageError(`merge: ${problem}`);
    const { mergeParts, MergeError } = await import('../../execute/parts.js');
    const { OutputExistsError } = await import('../../execute/output-dir.js');
    try {
      const s = await mergeParts(
        positionals.map((p) => resolve(io.cwd, p)),
        resolve(io.cwd, values.out),
      );
      if (format === 'json') io.stdout(`${JSON.stringify({ formatVersion: 1, outDir: values.out, ...s }, null, 2)}\n`);
      else io.stdout(`Wrote ${values.out} in ${s.seconds.toFixed(1)} s: ${s.tensors} tensors from ${s.parts} parts into ${s.shards} shard${s.shards === 1 ? '' : 's'} (${(s.bytes / 1e9).toFixed(2)} GB)\n`);
      return EXIT_OK;
    } catch (e) {
      if (e instanceof OutputExistsError) throw new UsageError(`merge: ${e.message}`);
      if (e instanceof MergeError) {
        if (e.code === 'merge-unreadable') throw new UsageError(`merge: ${e.message}`);
        io.stderr(renderDiagnostics([error(e.code, e.message)], new Map()));
        return EXIT_ERRORS;
      }
      throw e;
    }
  },
};
