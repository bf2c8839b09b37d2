/**
 * `quantc diff OLD NEW --model …`: the modules whose treatment changes
 * between two recipe versions, or between two saved plans.
 */
import { resolve } from 'node:path';
import { compressNames } from '../../match/compress-names.js';
import { diffPlans, type PlanDiff } from '../../plan/diff.js';
import { formatInt } from '../../plan/estimate.js';
import { PLAN_FORMAT_VERSION, type Plan } from '../../plan/types.js';
import { isDiagnostic } from '../../source-host.js';
import { choice, parseCommandArgs } from '../args.js';
import { cwdSourceHost } from '../cwd-host.js';
import { EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';
import { planFromCli, reportFailedPlan } from '../plan-args.js';
import { planModel } from '../saved-plan-paths.js';

const HELP = `Usage: quantc diff OLD NEW [--model PATH|MODEL_ID] [--format text|json]

Lists the modules whose treatment changes from OLD to NEW: newly quantized,
no longer quantized, scheme changed, newly ignored or no longer ignored.
OLD and NEW are recipes (planned against --model, or each recipe's model
line) or plan JSON files saved with \`quantc plan --save\`. A recipe
diffed against a saved plan is planned against that plan's model unless
--model is given.

Options:
  --model PATH|ID     The model both recipes are planned against.
  --format text|json  Output format (default text).
  -h, --help          Show this help.

Exit status: 0 (with or without changes), 1 recipe/model errors, 2 bad usage.
`;

/** How many compressed module patterns a change shows before "… and N more patterns". */
const MAX_PATTERNS = 10;

/** The `diff` command. */
export const command: Command = {
  name: 'diff',
  summary: 'Diff two recipes or plans',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('diff', argv, { model: { type: 'string' }, format: { type: 'string' } });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    const format = choice('diff', 'format', values.format, ['text', 'json'] as const, 'text');
    if (positionals.length !== 2) throw new UsageError('diff: expected OLD and NEW. See "quantc diff --help".');
    const saved = positionals.map((input) => readSavedPlan(input, io));
    // A recipe compared with a saved plan is planned against that plan's model unless --model says otherwise.
    const from = saved.findIndex((p) => p !== undefined);
    const model = (values.model as string | undefined) ?? (from >= 0 ? planModel(resolve(io.cwd, positionals[from]!), saved[from]!.model.id) : undefined);
    const plans: Plan[] = [];
    for (const [i, input] of positionals.entries()) {
      const plan = saved[i];
      if (plan) {
        plans.push(plan);
        continue;
      }
      const planned = await planFromCli(input, model, io);
      if (!planned.build) return reportFailedPlan(planned, io, format);
      plans.push(planned.build.plan);
    }
    const [before, after] = plans as [Plan, Plan];
    if (before.model.configHash !== after.model.configHash) {
      io.stderr(`quantc: warning: the two plans are for different models ("${before.model.id}" and "${after.model.id}").\n`);
    }
    const diff = diffPlans(before, after);
    io.stdout(format === 'json' ? `${JSON.stringify(diff, null, 2)}\n` : renderDiff(diff, positionals[0]!, positionals[1]!));
    return EXIT_OK;
  },
};

/** A saved plan, when `path` is a JSON file with a plan's formatVersion. */
function readSavedPlan(path: string, io: CliIo): Plan | undefined {
  if (!path.endsWith('.json')) return undefined;
  const source = cwdSourceHost(io.cwd).read(path);
  if (isDiagnostic(source)) throw new UsageError(`diff: ${source.message}`);
  let json: unknown;
  try {
    json = JSON.parse(source.text);
  } catch {
    return undefined;
  }
  const plan = json as Partial<Plan>;
  if (typeof plan.formatVersion !== 'number' || !Array.isArray(plan.quantize)) return undefined;
  if (plan.formatVersion !== PLAN_FORMAT_VERSION) {
    throw new UsageError(`diff: "${path}" is a plan of format version ${plan.formatVersion}; this quantc reads version ${PLAN_FORMAT_VERSION}.`);
  }
  return plan as Plan;
}

function renderDiff(diff: PlanDiff, oldName: string, newName: string): string {
  if (diff.changes.length === 0) return `No changes: ${oldName} and ${newName} treat every module the same way.\n`;
  const out = [`quantc diff: ${oldName} → ${newName}`, ''];
  const symbol = { added: '+', removed: '-', 'scheme-changed': '~', 'now-ignored': '-', 'no-longer-ignored': '+' } as const;
  for (const c of diff.changes) {
    const what =
      c.kind === 'added'
        ? `now quantized with ${c.after}`
        : c.kind === 'removed'
          ? `no longer quantized (was ${c.before})`
          : c.kind === 'scheme-changed'
            ? `scheme ${c.before} → ${c.after}`
            : c.kind === 'now-ignored'
              ? `now ignored by "${c.after}"`
              : `no longer ignored (was "${c.before}")`;
    out.push(`${symbol[c.kind]} ${formatInt(c.modules.length)} module${c.modules.length === 1 ? '' : 's'}: ${what}`);
    const patterns = compressNames(c.modules);
    for (const g of patterns.slice(0, MAX_PATTERNS)) out.push(`    ${g.pattern}`);
    if (patterns.length > MAX_PATTERNS) out.push(`    … and ${formatInt(patterns.length - MAX_PATTERNS)} more patterns`);
  }
  out.push('', `${formatInt(diff.changed)} module${diff.changed === 1 ? ' changes' : 's change'} treatment.`);
  return `${out.join('\n')}\n`;
}
