/**
 * Thin wrapper over node:util parseArgs that turns its exceptions into
 * UsageErrors with one-line reasons.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { suggestion } from '../diagnostics.js';
import { UsageError } from './io.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed flags and positionals. */
export interface ParsedArgs {
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly positionals: string[];
}

/**
 * `--flag -1` as `--flag=-1` for string options: parseArgs takes a value
 * that starts with "-" for an option and fails with a garbled message; as
 * a value it reaches the flag's own check, which says what it must be.
 */
function joinNegativeValues(argv: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    const next = argv[i + 1];
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** Parses argv for `command`; `--help` is always accepted. */
export function parseCommandArgs(command: string, argv: readonly string[], options: Options): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({
      args: joinNegativeValues(argv, options),
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as ParsedArgs['values'], positionals };
  } catch (e) {
    const message = (e as Error).message.replace(/\. To specify.*$/s, '').replace(/\n.*/s, '');
    const unknown = /^Unknown option '--([^']+)'/.exec(message)?.[1];
    const hint = unknown === undefined ? '' : suggestion(unknown, Object.keys(options)).replace(/"([^"]+)"/, '"--$1"');
    throw new UsageError(`${command}: ${message}.${hint} See "quantc ${command} --help".`);
  }
}

/** Reads a string flag restricted to `choices`. */
export function choice<T extends string>(command: string, flag: string, value: unknown, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${command}: --${flag} must be one of ${choices.join(', ')}, not "${String(value)}".`);
}

/** Reads a flag that must be a positive integer; `fallback` when it is absent. */
export function positiveInt<F extends number | undefined>(command: string, flag: string, value: unknown, fallback: F): number | F {
  return integerAtLeast(command, flag, value, fallback, 1);
}

/** Reads a flag that must be an integer, 0 or more; `fallback` when it is absent. */
export function nonNegativeInt<F extends number | undefined>(command: string, flag: string, value: unknown, fallback: F): number | F {
  return integerAtLeast(command, flag, value, fallback, 0);
}

function integerAtLeast<F extends number | undefined>(command: string, flag: string, value: unknown, fallback: F, min: 0 | 1): number | F {
  if (value === undefined) return fallback;
  // Number('') is 0: an empty value is no number.
  const n = typeof value === 'string' && value.trim() === '' ? NaN : Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${command}: --${flag} must be a ${min === 1 ? 'positive' : 'non-negative'} integer, not "${String(value)}".`);
  return n;
}
