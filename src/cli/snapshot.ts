/**
 * The entry point baked into quantc's V8 startup snapshot, which serves the
 * recipe commands (`check`, `fmt`, `export`). Building the snapshot runs this
 * file once: it loads those commands and puts each front end, the DSL parser
 * (after Chevrotain's grammar analysis) and the validators through a small
 * in-memory recipe, so a snapshot process starts with all of that already
 * in its heap. Nothing about the user's files is in the snapshot: every run
 * reads, parses and validates them afresh.
 *
 * Only meaningful inside the CommonJS bundle `npm run build` makes of it,
 * where `import.meta.url` stands for `globalThis.__quantcModuleUrl`.
 */
import { dirname, join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { startupSnapshot } from 'node:v8';
// What process.stdout and process.stderr are made of when they are pipes or terminals.
import 'node:net';
import { compileRecipe } from '../compile.js';
import { hasErrors } from '../diagnostics.js';
import { exportJson } from '../export/json.js';
import { exportYaml } from '../export/yaml.js';
import { formatDsl, printDsl } from '../format/print-dsl.js';
import { renderDiagnostics } from '../report/diagnostics.js';
import { isDiagnostic, type SourceHost } from '../source-host.js';
import { command as check } from './commands/check.js';
import { command as exportCommand } from './commands/export.js';
import { command as fmt } from './commands/fmt.js';
import { cwdSourceHost } from './cwd-host.js';
import { EXIT_USAGE, type CliIo, type Command } from './io.js';
import { runCommand } from './run-command.js';
import { processIo, runProcess } from './run-process.js';

declare global {
  /** The bundle's own file URL; the snapshot bundle reads it wherever the sources say `import.meta.url`. */
  var __quantcModuleUrl: string | undefined;
}

/** The commands this snapshot serves; the launcher sends every other command to the plain entry point. */
const COMMANDS: Readonly<Record<string, Command>> = { check, fmt, export: exportCommand };

/** The bundle's file name; the blob is written next to it. */
const BUNDLE_NAME = 'quantc.cjs';

/** Small recipes, one per front end, valid unless named `invalid`. */
const WARM_UP: Readonly<Record<string, string>> = {
  'warm-up.qr': [
    'recipe "warm-up" version "1.0.0"',
    'model "meta-llama/Llama-3.1-8B"',
    '',
    'stage quant {',
    '  QuantizationModifier {',
    '    targets = [Linear]',
    '    scheme = W4A16',
    '    ignore = ["lm_head", re"model.layers.0.*"]',
    '  }',
    '}',
    '',
  ].join('\n'),
  'warm-up.yaml': ['quant_stage:', '  quant_modifiers:', '    QuantizationModifier:', '      targets: [Linear]', '      scheme: W4A16', '      ignore: [lm_head]', ''].join('\n'),
  'warm-up.json': '{"quant_stage": {"quant_modifiers": {"QuantizationModifier": {"targets": ["Linear"], "scheme": "W4A16"}}}}\n',
  'invalid.qr': 'stage quant {\n  QuantizationModifier {\n    targets = [Linear\n    scheme = W9\n  }\n}\n',
};

const warmUpHost: SourceHost = {
  read: (path) => ({ path, text: WARM_UP[path]! }),
};

/** Swallows output. */
const quietIo: CliIo = { stdout: () => undefined, stderr: () => undefined, cwd: '/', isTty: false };

/**
 * Runs every stage the snapshot commands use on the warm-up recipes, so
 * their lazily loaded modules and lazily built parsers exist in the heap,
 * and the Node internals a run needs (argument parsing, file reading,
 * writable streams) are compiled. Throws when a warm-up recipe does not
 * compile as expected: a snapshot that does not work must not be built.
 */
async function warmUp(bundle: string): Promise<void> {
  for (const command of Object.values(COMMANDS)) await runCommand(command, ['--help'], quietIo);
  if (isDiagnostic(cwdSourceHost(dirname(bundle)).read(BUNDLE_NAME))) throw new Error(`snapshot warm-up: cannot read ${bundle}`);
  new Writable({ write: (_chunk, _encoding, done) => done() }).end('warm-up');
  for (const path of Object.keys(WARM_UP)) {
    const result = await compileRecipe(path, warmUpHost);
    renderDiagnostics(result.diagnostics, result.sources);
    if (hasErrors(result.diagnostics) !== path.startsWith('invalid')) {
      throw new Error(`snapshot warm-up: ${path} compiled with unexpected diagnostics:\n${renderDiagnostics(result.diagnostics, result.sources)}`);
    }
    if (!result.ir || !result.document) continue;
    exportYaml(result.ir, result.document);
    exportJson(result.ir, result.sources);
    printDsl(result.document);
  }
  formatDsl({ path: 'warm-up.qr', text: WARM_UP['warm-up.qr']! });
}

/** The blob this process started from, from its `--snapshot-blob` option. */
function blobPath(): string | undefined {
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--snapshot-blob') return args[i + 1];
    if (args[i]!.startsWith('--snapshot-blob=')) return args[i]!.slice('--snapshot-blob='.length);
  }
  return undefined;
}

/** Runs one snapshot command; argv starts with the command name. */
async function runSnapshotCommand(argv: readonly string[]): Promise<number> {
  const io = processIo();
  const [name = '', ...rest] = argv;
  const command = COMMANDS[name];
  if (!command) {
    io.stderr(`quantc: "${name}" is not a command this snapshot serves; run it through the quantc executable.\n`);
    return EXIT_USAGE;
  }
  return runCommand(command, rest, io);
}

if (startupSnapshot.isBuildingSnapshot()) {
  const bundle = resolve(process.argv[1] ?? BUNDLE_NAME);
  globalThis.__quantcModuleUrl = pathToFileURL(bundle).href;
  startupSnapshot.setDeserializeMainFunction(() => {
    // The package may have moved since the build: the blob's folder is where the bundle is now.
    const blob = blobPath();
    if (blob !== undefined) globalThis.__quantcModuleUrl = pathToFileURL(join(dirname(resolve(blob)), BUNDLE_NAME)).href;
    void runProcess(process.argv.slice(1), runSnapshotCommand);
  });
  // A failed warm-up is an unhandled rejection: the build process fails and writes no blob.
  void warmUp(bundle);
}
