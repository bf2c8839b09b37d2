/**
 * Typed reads of a `config.json` object, falling back to the config class
 * defaults of transformers when a key is absent (published configs omit
 * many of them), and collecting a diagnostic instead of throwing when a
 * value is missing or has the wrong type.
 */
import { error, type Diagnostic } from '../../diagnostics.js';

/** A raw config plus the defaults of its transformers config class. */
export class ConfigReader {
  readonly diagnostics: Diagnostic[] = [];
  private readonly reported = new Set<string>();

  /**
   * `aliases` mirrors the config class's `attribute_map`: a key may be
   * spelled either way in config.json (`num_experts` / `num_local_experts`).
   */
  constructor(
    readonly raw: Readonly<Record<string, unknown>>,
    private readonly defaults: Readonly<Record<string, unknown>>,
    private readonly modelType: string,
    private readonly aliases: Readonly<Record<string, string>> = {},
  ) {}

  /** The value of `key` (or its alias): the config's own when present (even `null`), else the default. */
  get(key: string): unknown {
    if (Object.prototype.hasOwnProperty.call(this.raw, key)) return this.raw[key];
    const alias = this.aliases[key];
    if (alias !== undefined && Object.prototype.hasOwnProperty.call(this.raw, alias)) return this.raw[alias];
    return this.defaults[key] ?? (alias === undefined ? undefined : this.defaults[alias]);
  }

  /** True when `key` is present with a non-null value (or has a non-null default). */
  has(key: string): boolean {
    const v = this.get(key);
    return v !== undefined && v !== null;
  }

  /** A required integer; a missing or invalid value is reported and read as 1. */
  int(key: string): number {
    const v = this.get(key);
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
    if (this.reported.has(key)) return 1;
    this.reported.add(key);
    this.diagnostics.push(
      error(
        'config-invalid-field',
        v === undefined || v === null
          ? `The ${this.modelType} config has no "${key}", which is needed to build the module tree.`
          : `The ${this.modelType} config field "${key}" must be a non-negative integer, not ${JSON.stringify(v)}.`,
      ),
    );
    return 1;
  }

  /** An optional integer: `undefined` when absent or null. */
  optInt(key: string): number | undefined {
    return this.has(key) ? this.int(key) : undefined;
  }

  /** A boolean, `fallback` when absent or null. */
  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    return typeof v === 'boolean' ? v : fallback;
  }

  /** A string, `fallback` when absent or not a string. */
  str(key: string, fallback: string): string {
    const v = this.get(key);
    return typeof v === 'string' ? v : fallback;
  }

  /** A list of integers, or `undefined` when absent, null or empty-but-invalid. */
  intList(key: string): number[] | undefined {
    const v = this.get(key);
    return Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined;
  }

  /** A list of strings, or `undefined` when absent or null. */
  strList(key: string): string[] | undefined {
    const v = this.get(key);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  }

  /** The model's parameter dtype: `dtype`, else `torch_dtype`, else float32 (what `from_config` uses). */
  dtype(): string {
    const v = this.get('dtype') ?? this.get('torch_dtype');
    return typeof v === 'string' && v !== 'auto' ? v.replace(/^torch\./, '') : 'float32';
  }
}
