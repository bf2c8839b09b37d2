/**
 * `quantc explain RECIPE --model … MODULE`: why one module is quantized,
 * ignored, rewritten or left alone, naming the rule and its line.
 */
import { explainModule } from '../../plan/explain.js';
import { renderExplanation } from '../../report/explain-text.js';
import { choice, parseCommandArgs } from '../args.js';
import { EXIT_ERRORS, EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';
import { planFromCli, reportFailedPlan } from '../plan-args.js';

const HELP = `Usage: quantc explain RECIPE [--model PATH|MODEL_ID] MODULE... [--format text|json]

Explains the plan's treatment of each MODULE (a qualified name such as
model.layers.3.mlp.experts.12.gate_proj): the calibration rewrite that
created or replaced it, the target that attached its scheme (and the
targets that lost on precedence), the ignore entry that removed it, or
why nothing applies. Names refer to the tree after calibration rewrites.

Options:
  --model PATH|ID     The model (default: the recipe's model line).
  --format text|json  Output format (default text).
  -h, --help          Show this help.

Exit status: 0 ok, 1 recipe/model errors or an unknown module, 2 bad usage.
`;

/** The `explain` command. */
export const command: Command = {
  name: 'explain',
  summary: 'Explain one module',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('explain', argv, { model: { type: 'string' }, format: { type: 'string' } });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    const format = choice('explain', 'format', values.format, ['text', 'json'] as const, 'text');
    if (positionals.length < 2) throw new UsageError('explain: expected RECIPE and at least one MODULE. See "quantc explain --help".');
    const [recipe, ...modules] = positionals;
    const planned = await planFromCli(recipe!, values.model as string | undefined, io);
    if (!planned.build) return reportFailedPlan(planned, io, format);
    let exit = EXIT_OK;
    const json: unknown[] = [];
    for (const name of modules) {
      const e = explainModule(planned.build, name);
      if ('error' in e) {
        io.stderr(`quantc: ${e.error}\n`);
        exit = EXIT_ERRORS;
        continue;
      }
      if (format === 'json') json.push(e);
      else io.stdout(renderExplanation(e, planned.sources));
    }
    if (format === 'json') io.stdout(`${JSON.stringify(json, null, 2)}\n`);
    return exit;
  },
};
