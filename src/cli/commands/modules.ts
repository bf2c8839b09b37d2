/**
 * `quantc modules --model PATH`: the module tree as llm-compressor sees it,
 * compressed into name patterns for people, or every module for tools.
 */
import type { Diagnostic } from '../../diagnostics.js';
import { compressNames } from '../../match/compress-names.js';
import { matchIndex, patternHits } from '../../match/match-index.js';
import { nameUnderOtherPrefix } from '../../match/lints/name-under-other-prefix.js';
import { nearestName } from '../../match/lints/suggest.js';
import { compilePattern } from '../../match/pattern.js';
import { loadModel } from '../../model/load.js';
import { rewriteModel } from '../../moe/rewrite-model.js';
import { paramsOf, type ModuleTree } from '../../model/module-tree.js';
import { formatInt } from '../../plan/estimate.js';
import { renderDiagnostics } from '../../report/diagnostics.js';
import { choice, parseCommandArgs } from '../args.js';
import { EXIT_ERRORS, EXIT_OK, UsageError, type CliIo, type Command } from '../io.js';
import { modelPathForCli } from '../model-arg.js';

const HELP = `Usage: quantc modules --model PATH|MODEL_ID [--filter PATTERN] [--tree loaded|rewritten] [--format text|json]

Prints the model's module tree as transformers builds it in memory (the
tree recipe targets are matched against). Text output compresses repeated
modules into ranges such as model.layers.{1..46}.mlp.experts.{0..63}.down_proj,
with each group's class, count and parameter shapes. JSON output lists
every module in named_modules() order as
{"name", "class", "bases", "params": {NAME: {"shape", "dtype"}}}
(the root module has name "").

Options:
  --model PATH|ID     A model folder, config.json, module-tree JSON, or ORG/NAME[@REV]
                      (Hugging Face cache, bundled config, or the Hub).
  --filter PATTERN    Only modules a compressed-tensors pattern matches
                      (exact name, class name, or re:<python regex>).
  --tree loaded|rewritten
                      The tree as loaded (default), or after the MoE calibration
                      rewrites that unpack fused experts into Linear modules.
  --format text|json  Output format (default text).
  -h, --help          Show this help.

Exit status: 0 ok, 1 model errors, 2 bad usage or unreadable model.
`;

/** Model errors that mean "cannot read the input" rather than "the input is wrong". */
const UNREADABLE = new Set(['model-not-found', 'model-file-unreadable', 'model-config-missing', 'unknown-model-id']);

/** Which tree a command shows: as loaded, or after the MoE calibration rewrites (fused experts unpacked). */
export type TreeChoice = 'loaded' | 'rewritten';

/**
 * Loads `--model` for a CLI command: the tree (rewritten when asked), or
 * the exit code after printing why not (warnings go to stderr either way).
 */
export async function loadTreeForCli(command: string, model: unknown, io: CliIo, which: TreeChoice = 'loaded'): Promise<ModuleTree | number> {
  if (typeof model !== 'string' || model === '') throw new UsageError(`${command}: --model is required. See "quantc ${command} --help".`);
  const arg = await modelPathForCli(model, 'config', io);
  if (typeof arg !== 'string') throw new UsageError(`${command}: ${arg.message}`);
  const { value, diagnostics } = loadModel(arg);
  if (!value) {
    const first = diagnostics.find((d) => d.severity === 'error');
    if (first && UNREADABLE.has(first.code)) throw new UsageError(`${command}: ${first.message}`);
    io.stderr(renderDiagnostics(diagnostics, new Map()));
    return EXIT_ERRORS;
  }
  const warnings = diagnostics.filter((d) => d.severity !== 'error');
  if (which === 'loaded') {
    if (warnings.length > 0) io.stderr(renderDiagnostics(warnings, new Map()));
    return value.tree;
  }
  // MoE blocks quantc has no rewrite for stay as loaded; say so, but show the tree.
  const rewritten = rewriteModel(value.tree, { calibrateAllExperts: true, onUnsupported: 'warning', minExpertTokens: 1, onLowCoverage: 'error', rewrites: [], origin: undefined });
  const notes = [...warnings, ...rewritten.diagnostics];
  if (notes.length > 0) io.stderr(renderDiagnostics(notes, new Map()));
  return rewritten.value.tree;
}

/** One module as `quantc modules --format json` prints it. */
export interface ModuleJson {
  readonly name: string;
  readonly class: string;
  /** The class's MRO after itself, ending with `Module`. */
  readonly bases: readonly string[];
  readonly params: Readonly<Record<string, { readonly shape: readonly number[]; readonly dtype: string }>>;
}

/** The JSON record of module `i`. */
export function moduleJson(tree: ModuleTree, i: number): ModuleJson {
  const cls = tree.classes[tree.classIds[i]!]!;
  const params: Record<string, { shape: readonly number[]; dtype: string }> = {};
  for (const p of paramsOf(tree, i)) params[p.name] = { shape: p.shape, dtype: p.dtype };
  return { name: tree.names[i]!, class: cls.name, bases: cls.mro.slice(1), params };
}

/** `weight [768, 2048] bfloat16, bias [768] bfloat16` for module `i`. */
function paramSummary(tree: ModuleTree, i: number): string {
  return paramsOf(tree, i)
    .map((p) => `${p.name} [${p.shape.join(', ')}] ${p.dtype}`)
    .join(', ');
}

/**
 * The compressed text listing: one line per group of modules with the same
 * class and parameters whose names form a range, indented by depth.
 */
export function renderModulesText(tree: ModuleTree, selected: readonly number[]): string {
  const names = selected.map((i) => tree.names[i]!);
  const keys = selected.map((i) => `${tree.classes[tree.classIds[i]!]!.name}\u0000${paramSummary(tree, i)}`);
  const groups = compressNames(names, (k) => keys[k]!, { wordsOnlyLast: true });
  const rows = groups.map((g) => {
    const [cls, params] = g.key.split('\u0000') as [string, string];
    const depth = g.pattern === '' ? 0 : g.pattern.replace(/\{[^}]*\}/g, '').split('.').length - 1;
    const label = `${'  '.repeat(depth)}${g.pattern === '' ? '(root)' : g.pattern}`;
    return { label, cls, count: g.count > 1 ? `×${formatInt(g.count)}` : '', params };
  });
  const w1 = Math.max(0, ...rows.map((r) => r.label.length));
  const w2 = Math.max(0, ...rows.map((r) => r.cls.length));
  const w3 = Math.max(0, ...rows.map((r) => r.count.length));
  const lines = rows.map((r) => `${r.label.padEnd(w1)}  ${r.cls.padEnd(w2)}  ${r.count.padStart(w3)}${r.params ? `  ${r.params}` : ''}`.trimEnd());
  const total = `${formatInt(selected.length)} of ${formatInt(tree.names.length)} module${tree.names.length === 1 ? '' : 's'} (${tree.origin.description})`;
  return lines.length === 0 ? `${total}\n` : `${lines.join('\n')}\n\n${total}\n`;
}

/** Why a plain filter matched nothing, when a module or class nearby is plausibly meant. */
function filterHint(tree: ModuleTree, filter: string): string {
  if (filter.startsWith('re:')) return '';
  const under = nameUnderOtherPrefix(tree, filter, 1)[0];
  const near = under ?? nearestName(tree, filter);
  const suggestion = under ? ` Did you mean "${under}" or "re:.*\\.${filter.replace(/\./g, '\\.')}$"?` : near ? ` Did you mean "${near}"?` : '';
  return ` A plain pattern is a full module name or a class name; use "re:" for a regex.${suggestion}`;
}

/** The `modules` command. */
export const command: Command = {
  name: 'modules',
  summary: 'Print a model\'s module tree (compressed, or every module as JSON)',
  help: HELP,
  async run(argv: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs('modules', argv, {
      model: { type: 'string' },
      filter: { type: 'string' },
      tree: { type: 'string' },
      format: { type: 'string' },
    });
    if (values.help) {
      io.stdout(HELP);
      return EXIT_OK;
    }
    if (positionals.length > 0) throw new UsageError(`modules: unexpected argument "${positionals[0]}". See "quantc modules --help".`);
    const format = choice('modules', 'format', values.format, ['text', 'json'] as const, 'text');
    const which = choice('modules', 'tree', values.tree, ['loaded', 'rewritten'] as const, 'loaded');
    const tree = await loadTreeForCli('modules', values.model, io, which);
    if (typeof tree === 'number') return tree;
    let selected = tree.names.map((_, i) => i);
    if (typeof values.filter === 'string') {
      const compiled = compilePattern({ text: values.filter, origin: undefined });
      if (compiled.diagnostics.length > 0) {
        io.stderr(renderDiagnostics(compiled.diagnostics as Diagnostic[], new Map()));
        return EXIT_ERRORS;
      }
      const bits = patternHits(matchIndex(tree), compiled.value).bits;
      selected = selected.filter((i) => bits[i] !== 0);
      if (selected.length === 0) io.stderr(`quantc: modules: no module matches "${values.filter}".${filterHint(tree, values.filter)}\n`);
    }
    if (format === 'json') {
      const body = selected.map((i) => `  ${JSON.stringify(moduleJson(tree, i))}`).join(',\n');
      io.stdout(selected.length === 0 ? '[]\n' : `[\n${body}\n]\n`);
    } else io.stdout(renderModulesText(tree, selected));
    return EXIT_OK;
  },
};
