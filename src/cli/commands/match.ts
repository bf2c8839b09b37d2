/**
 * `quantc match PATTERN… --model PATH [--ignore PATTERN…]`: what target
 * patterns hit under compressed-tensors semantics, which pattern decided
 * each module, what a scheme would skip, and the warnings c-t never gives.
 */
import { hasErrors } from '../../diagnostics.js';
import type { QuantizationScheme } from '../../ir/types.js';
import { compressNames } from '../../match/compress-names.js';
import { runMatchLints } from '../../match/lints/index.js';
import { assignSchemes, couldNotMatchMessage, type ModuleSchemes, type SchemeAssignment } from '../../match/match.js';
import { compilePatterns } from '../../match/pattern.js';
import type { ModuleTree } from '../../model/module-tree.js';
import { formatInt } from '../../plan/estimate.js';
import { diagnosticToJson, renderDiagnostics } from '../../report/diagnostics.js';
import { span, type Span } from '../../source.js';
import { choice, parseCommandArgs } from '../args.js';
import { EXIT_ERRORS, EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';
import { loadTreeForCli } from './modules.js';

const HELP = `Usage: quantc match PATTERN... --model PATH|MODEL_ID [--ignore PATTERN]... [--tree rewritten|loaded] [--format text|json]

Matches target PATTERNs (and a global ignore list) against the model the
way compressed-tensors does: "re:<python regex>" is re.match on the module
name (anchored at the start only); anything else is an exact module name or
a class name anywhere in the class hierarchy. Shows the modules that would
receive a scheme and the target that decided each (exact names, then re:
patterns alphabetically, then class names), the matched modules that
receive none (only Linear, Embedding and attention modules do), the ignored
ones, compressed-tensors' own warnings, and quantc's lints (patterns that
match nothing, ignore entries without effect, unescaped dots, …).
By default the tree is the one llm-compressor quantizes: after the MoE
calibration rewrites that unpack fused experts into Linear modules.

Options:
  --model PATH|ID       A model folder, config.json, module-tree JSON, or ORG/NAME[@REV]
                        (Hugging Face cache, bundled config, or the Hub).
  --ignore PATTERN      An ignore entry; repeat for several.
  --tree rewritten|loaded
                        Match after the MoE rewrites (default) or on the tree as loaded.
  --format text|json    Output format (default text).
  -h, --help            Show this help.

Exit status: 0 ok (warnings allowed), 1 invalid patterns or model errors, 2 bad usage.
`;

/** Pseudo source path for patterns given on the command line. */
const ARGS_PATH = '<command line>';

const NO_SCHEME: QuantizationScheme = { targets: [], weights: null, input_activations: null, output_activations: null, format: null };

/** The patterns laid out as one line of text so diagnostics can point into it. */
function argsSource(targets: readonly string[], ignore: readonly string[]): { text: string; spans: Span[] } {
  let text = '';
  const spans: Span[] = [];
  const add = (s: string) => {
    if (text !== '') text += ' ';
    spans.push(span(ARGS_PATH, text.length, text.length + s.length));
    text += s;
  };
  targets.forEach(add);
  ignore.forEach((s) => {
    text += text === '' ? '--ignore' : ' --ignore';
    add(s);
  });
  return { text, spans };
}

/** Rows of `pattern  class  ×n  detail`, one per group of like modules. */
function table(tree: ModuleTree, modules: readonly number[], detail: (k: number) => string): string[] {
  const keys = modules.map((m, k) => `${tree.classes[tree.classIds[m]!]!.name}\u0000${detail(k)}`);
  const groups = compressNames(
    modules.map((m) => tree.names[m]!),
    (k) => keys[k]!,
  );
  const rows = groups.map((g) => {
    const [cls, why] = g.key.split('\u0000') as [string, string];
    return [g.pattern === '' ? '(root)' : g.pattern, cls, g.count > 1 ? `×${formatInt(g.count)}` : '', why];
  });
  const widths = [0, 1, 2].map((c) => Math.max(0, ...rows.map((r) => r[c]!.length)));
  return rows.map((r) => `  ${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]!.padStart(widths[2]!)}  ${r[3]}`.trimEnd());
}

function section(title: string, count: number, rows: string[]): string {
  return `${title}: ${formatInt(count)} module${count === 1 ? '' : 's'}\n${rows.length > 0 ? `${rows.join('\n')}\n` : ''}`;
}

/** The human report of one match. */
export function renderMatchText(tree: ModuleTree, a: SchemeAssignment, ignoreTexts: readonly string[]): string {
  const via = (list: ModuleSchemes) => (k: number) => `via "${a.targets[list.targets[k]!]!.pattern.text}"`;
  const out: string[] = [];
  out.push(section('Receive a scheme', a.quantized.modules.length, table(tree, [...a.quantized.modules], via(a.quantized))));
  if (a.attention.modules.length > 0) {
    out.push(section('Attention modules (activation quantization only)', a.attention.modules.length, table(tree, [...a.attention.modules], via(a.attention))));
  }
  if (a.skipped.modules.length > 0) {
    out.push(section('Matched but receive no scheme (not Linear, Embedding or attention)', a.skipped.modules.length, table(tree, [...a.skipped.modules], via(a.skipped))));
  }
  if (a.match.ignored.length > 0) {
    const ig = a.match.ignored;
    out.push(
      section(
        'Ignored',
        ig.length,
        table(
          tree,
          ig.map((x) => x.module),
          (k) => `by "${ignoreTexts[ig[k]!.ignore]}" (matched "${a.targets[ig[k]!.target]!.pattern.text}")`,
        ),
      ),
    );
  }
  const targetLines = a.targets.map((t, i) => `  ${t.pattern.text}  recorded for ${formatInt(a.match.recorded[i]!)} module${a.match.recorded[i] === 1 ? '' : 's'}`);
  out.push(`Targets (compressed-tensors records each module for its first matching target):\n${targetLines.join('\n')}\n`);
  if (a.match.unmatchedTargets.length > 0) {
    const lines = a.match.unmatchedTargets.map((t) => `  ${couldNotMatchMessage(tree, a.targets[t]!.pattern.text)}`);
    out.push(`compressed-tensors would log:\n${lines.join('\n')}\n`);
  }
  return out.join('\n');
}

/** The `match` command. */
export const command: Command = {
  name: 'match',
  summary: 'Show what target/ignore patterns match in a model, and why',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('match', argv, {
      model: { type: 'string' },
      ignore: { type: 'string', multiple: true },
      tree: { type: 'string' },
      format: { type: 'string' },
    });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    const format = choice('match', 'format', values.format, ['text', 'json'] as const, 'text');
    if (positionals.length === 0) throw new UsageError('match: expected at least one target PATTERN. See "quantc match --help".');
    const ignoreTexts = (values.ignore as string[] | undefined) ?? [];
    const which = choice('match', 'tree', values.tree, ['rewritten', 'loaded'] as const, 'rewritten');
    const tree = await loadTreeForCli('match', values.model, io, which);
    if (typeof tree === 'number') return tree;
    const { text, spans } = argsSource(positionals, ignoreTexts);
    const sources = new Map([[ARGS_PATH, text]]);
    const targets = compilePatterns(positionals.map((t, i) => ({ text: t, origin: spans[i] })));
    const ignore = compilePatterns(ignoreTexts.map((t, i) => ({ text: t, origin: spans[positionals.length + i] })));
    const compileErrors = [...targets.diagnostics, ...ignore.diagnostics];
    if (hasErrors(compileErrors)) {
      io.stderr(renderDiagnostics(compileErrors, sources));
      return EXIT_ERRORS;
    }
    const groups = [{ name: 'group_0', targets: targets.value, scheme: NO_SCHEME }];
    const a = assignSchemes(tree, groups, ignore.value);
    const lints = runMatchLints(tree, groups, ignore.value);
    if (format === 'json') {
      const rows = (list: ModuleSchemes) =>
        [...list.modules].map((m, k) => ({ name: tree.names[m], class: tree.classes[tree.classIds[m]!]!.name, target: a.targets[list.targets[k]!]!.pattern.text }));
      const json = {
        quantized: rows(a.quantized),
        attention: rows(a.attention),
        skipped: rows(a.skipped),
        ignored: a.match.ignored.map((x) => ({ name: tree.names[x.module], target: a.targets[x.target]!.pattern.text, ignore: ignoreTexts[x.ignore] })),
        targets: a.targets.map((t, i) => ({ pattern: t.pattern.text, recorded: a.match.recorded[i] })),
        compressedTensorsWarnings: a.match.unmatchedTargets.map((t) => couldNotMatchMessage(tree, a.targets[t]!.pattern.text)),
        diagnostics: lints.map((d) => diagnosticToJson(d, sources)),
      };
      io.stdout(`${JSON.stringify(json, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout(renderMatchText(tree, a, ignoreTexts));
    if (lints.length > 0) io.stderr(`\n${renderDiagnostics(lints, sources)}`);
    return EXIT_OK;
  },
};
