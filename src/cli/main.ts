/**
 * `quantc` entry point: dispatches to one subcommand, loaded lazily so a
 * `check` never pays for model or execution code.
 */
import { suggestion } from '../diagnostics.js';
import { QUANTC_VERSION } from '../version.js';
import { EXIT_USAGE, type CliIo, type Command } from './io.js';
import { runCommand } from './run-command.js';
import { processIo } from './run-process.js';

/** Subcommands in help order, each loaded on demand. */
const COMMANDS: Readonly<Record<string, { summary: string; load: () => Promise<Command> }>> = {
  check: { summary: 'Check recipes for errors', load: async () => (await import('./commands/check.js')).command },
  fmt: { summary: 'Format a .qr recipe canonically, keeping comments', load: async () => (await import('./commands/fmt.js')).command },
  plan: { summary: 'Dry-run a recipe against a model: rewrites, schemes, ignores, steps', load: async () => (await import('./commands/plan.js')).command },
  apply: { summary: 'Run a plan (calibration, GPTQ, SmoothQuant) and write a compressed-tensors checkpoint', load: async () => (await import('./commands/apply.js')).command },
  merge: { summary: 'Merge the parts written by `apply --shard I/N` into one checkpoint', load: async () => (await import('./commands/merge.js')).command },
  eval: { summary: 'Perplexity of a model or quantized checkpoint on a text file', load: async () => (await import('./commands/eval.js')).command },
  explain: { summary: 'Explain why one module is quantized, ignored, rewritten or untouched', load: async () => (await import('./commands/explain.js')).command },
  diff: { summary: 'List modules whose treatment changes between two recipes or saved plans', load: async () => (await import('./commands/diff.js')).command },
  export: { summary: 'Export a recipe as llm-compressor YAML, quantc DSL or IR JSON', load: async () => (await import('./commands/export.js')).command },
  modules: { summary: "Print a model's module tree, compressed into ranges (or every module as JSON)", load: async () => (await import('./commands/modules.js')).command },
  match: { summary: 'Show what target/ignore patterns match in a model, and why', load: async () => (await import('./commands/match.js')).command },
};


function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'quantc — a compiler for LLM quantization recipes',
    '',
    'Usage: quantc <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run "quantc <command> --help" for a command\'s options.',
    '',
  ].join('\n');
}

/** Runs the CLI and returns the exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(topHelp());
    return name === undefined ? EXIT_USAGE : 0;
  }
  if (name === '--version' || name === '-V') {
    io.stdout(`${QUANTC_VERSION}\n`);
    return 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.stderr(`quantc: unknown command "${name}".${suggestion(name, Object.keys(COMMANDS))} Run "quantc --help" for the list.\n`);
    return EXIT_USAGE;
  }
  return runCommand(await entry.load(), rest, io);
}
