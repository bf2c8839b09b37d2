/**
 * The `recipe.yaml` llm-compressor writes next to a checkpoint, reproduced:
 * `Recipe.yaml()` puts every modifier under ONE stage named after the last
 * stage (`{stage}_stage: {group}_modifiers: {Class: args}`), drops quantc's
 * own settings (they are not llm-compressor's), and PyYAML's
 * `yaml.dump(sort_keys=False, default_flow_style=None, width=88)` decides
 * the layout: collections holding only scalars are written in flow style,
 * and a string with a flow indicator (`:`, `,`, `[` …) is single-quoted
 * inside them.
 */
import type { RecipeIR } from '../ir/types.js';

/** PyYAML's line width for `Recipe.yaml()`. */
const WIDTH = 88;

/** The text llm-compressor's `Recipe.yaml()` would write for this recipe. */
export function savedRecipeYaml(ir: RecipeIR): string {
  const last = ir.modifiers[ir.modifiers.length - 1]?.stage ?? 'default';
  const groups = new Map<string, Map<string, Readonly<Record<string, unknown>>>>();
  for (const m of ir.modifiers) {
    const key = `${m.group}_modifiers`;
    const group = groups.get(key) ?? new Map();
    // A dict keyed by class name: a later modifier of the same class in the same group replaces it.
    group.set(m.type, m.args);
    groups.set(key, group);
  }
  const root = new Map<string, unknown>([[`${last}_stage`, groups]]);
  return emitMapping(root, 0).join('\n') + '\n';
}

type Node = unknown;

function isScalar(v: Node): boolean {
  return v === null || typeof v !== 'object';
}

function entries(v: Node): [string, Node][] {
  return v instanceof Map ? [...v.entries()] : Object.entries(v as Record<string, unknown>);
}

function isMapping(v: Node): boolean {
  return v instanceof Map || (typeof v === 'object' && v !== null && !Array.isArray(v));
}

/** Block mapping lines at `indent`; nested scalar-only collections go on one line. */
function emitMapping(map: Node, indent: number): string[] {
  const pad = ' '.repeat(indent);
  const out: string[] = [];
  for (const [key, value] of entries(map)) {
    const k = `${pad}${scalar(key, false)}:`;
    if (isScalar(value)) out.push(`${k} ${scalar(value, false)}`);
    else if (Array.isArray(value) ? value.length === 0 || value.every(isScalar) : entries(value).length === 0 || entries(value).every(([, v]) => isScalar(v))) {
      out.push(...wrapFlow(k, flow(value), indent));
    } else if (Array.isArray(value)) {
      out.push(k);
      for (const item of value) {
        if (isMapping(item)) {
          const lines = emitMapping(item, indent + 2);
          out.push(`${pad}- ${lines[0]!.trimStart()}`, ...lines.slice(1));
        } else out.push(`${pad}- ${isScalar(item) ? scalar(item, false) : flow(item)}`);
      }
    } else {
      out.push(k, ...emitMapping(value, indent + 2));
    }
  }
  return out;
}

/** A scalar-only collection in flow style: `[a, b]`, `{k: v}`. */
function flow(v: Node): string {
  if (Array.isArray(v)) return `[${v.map((x) => (isScalar(x) ? scalar(x, true) : flow(x))).join(', ')}]`;
  return `{${entries(v)
    .map(([k, x]) => `${scalar(k, true)}: ${isScalar(x) ? scalar(x, true) : flow(x)}`)
    .join(', ')}}`;
}

/**
 * PyYAML's flow wrapping: before each item after the first, if the line
 * (ending in the previous item's comma) is already past the width, the item
 * starts a new line indented two columns deeper than the key.
 */
function wrapFlow(head: string, text: string, indent: number): string[] {
  const lines: string[] = [];
  const parts = text.split(/(?<=, )/);
  let line = `${head} ${parts[0]!}`;
  for (const part of parts.slice(1)) {
    if (line.trimEnd().length > WIDTH) {
      lines.push(line.trimEnd());
      line = `${' '.repeat(indent + 2)}${part}`;
    } else line += part;
  }
  lines.push(line.trimEnd());
  return lines;
}

/** A scalar as PyYAML writes it (`inFlow`: inside a flow collection). */
function scalar(v: Node, inFlow: boolean): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return number(v);
  const s = String(v);
  return plainAllowed(s, inFlow) ? s : `'${s.replace(/'/g, "''")}'`;
}

/** Python's float repr as PyYAML writes it (`1.0e-05`, `0.01`, `.inf`). */
function number(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e16) return String(n);
  if (!Number.isFinite(n)) return Number.isNaN(n) ? '.nan' : n > 0 ? '.inf' : '-.inf';
  const r = String(n).replace(/e([+-])(\d)$/, 'e$10$2');
  return /e/.test(r) && !r.includes('.') ? r.replace('e', '.0e') : r;
}

/** Whether PyYAML would write `s` unquoted. */
function plainAllowed(s: string, inFlow: boolean): boolean {
  if (s === '' || s !== s.trim()) return false;
  if (/^[-?:,[\]{}#&*!|>'"%@`]/.test(s)) return false;
  if (/[\n\r\t\u0085\u2028\u2029]|: | #|:$/.test(s)) return false;
  if (inFlow && /[,?[\]{}:]/.test(s)) return false;
  // Strings YAML 1.1 would resolve to another type are quoted.
  if (/^(?:[-+]?(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NaN)|~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N|[-+]?0b[01_]+|[-+]?0x[\da-fA-F_]+|[-+]?\d[\d_]*(?::[0-5]?\d)+(?:\.\d*)?)$/.test(s)) return false;
  return true;
}
