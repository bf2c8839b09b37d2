/**
 * The activation side of a checkpoint's `quantization_config`: which
 * Linear inputs are quantized with which arguments, and the kv cache
 * scheme, read as compressed-tensors 0.18 reads them (config groups matched
 * by module name or class, later groups winning, `ignore` excluded).
 */

/** Quantization arguments of activations (compressed-tensors `QuantizationArgs`, the fields the forward reads). */
export interface ActivationArgs {
  readonly numBits: number;
  readonly type: 'int' | 'float';
  readonly strategy: string;
  /** `true` (per batch), `false` (static scales stored in the checkpoint) or `'local'` (NVFP4: dynamic local scales under a stored global scale). */
  readonly dynamic: boolean | 'local';
  readonly symmetric: boolean;
  readonly groupSize: number | null;
  /** `float8_e4m3fn`, `uint8` (MX exponents), or null (the activation dtype). */
  readonly scaleDtype: string | null;
}

/** One config group: its targets and its input activation arguments (null when inputs stay unquantized). */
export interface ActivationGroup {
  readonly name: string;
  readonly targets: readonly string[];
  readonly input: ActivationArgs | null;
  readonly output: boolean;
}

/** What a checkpoint's `quantization_config` says about activations. */
export interface ActivationConfig {
  readonly groups: readonly ActivationGroup[];
  readonly ignore: readonly string[];
  readonly kvCache: ActivationArgs | null;
}

/** A `quantization_config` this module cannot read; the message is user-facing. */
export class ActivationConfigError extends Error {}

function args(raw: unknown, where: string): ActivationArgs | null {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'object') throw new ActivationConfigError(`${where}: expected an object`);
  const a = raw as Record<string, unknown>;
  const type = a.type ?? 'int';
  if (type !== 'int' && type !== 'float') throw new ActivationConfigError(`${where}: type "${String(type)}" is not int or float`);
  const numBits = Number(a.num_bits ?? 8);
  const dynamic = a.dynamic === 'local' ? 'local' : a.dynamic === true;
  const scaleDtype = typeof a.scale_dtype === 'string' ? a.scale_dtype.replace(/^torch\./, '') : null;
  return {
    numBits,
    type,
    strategy: String(a.strategy ?? 'tensor'),
    dynamic,
    symmetric: a.symmetric !== false,
    groupSize: typeof a.group_size === 'number' ? a.group_size : null,
    scaleDtype,
  };
}

/** Reads the activation side of `config.json`'s `quantization_config` (null when the model has none). */
export function readActivationConfig(config: Readonly<Record<string, unknown>>): ActivationConfig | null {
  const q = config.quantization_config as Record<string, unknown> | undefined;
  if (!q || typeof q !== 'object') return null;
  const groupsRaw = (q.config_groups ?? {}) as Record<string, Record<string, unknown>>;
  const groups = Object.entries(groupsRaw).map(([name, g]): ActivationGroup => {
    const targets = Array.isArray(g.targets) ? g.targets.map(String) : [];
    return { name, targets, input: args(g.input_activations, `quantization_config.config_groups.${name}.input_activations`), output: g.output_activations != null };
  });
  const ignore = Array.isArray(q.ignore) ? q.ignore.map(String) : [];
  return { groups, ignore, kvCache: args(q.kv_cache_scheme, 'quantization_config.kv_cache_scheme') };
}

/** compressed-tensors' `match_name`: `re:` targets match from the start of the name (Python `re.match`), others exactly. */
export function matchName(name: string, target: string): boolean {
  if (target.startsWith('re:')) return new RegExp(`^(?:${target.slice(3)})`).test(name);
  return target === name;
}

/** Whether `module` (of class `cls`) matches one of `targets`, by name or class. */
function matches(module: string, cls: string, targets: readonly string[]): boolean {
  return targets.some((t) => t === cls || matchName(module, t));
}

/** The config group that quantizes Linear `module` (the last matching one, as compressed-tensors applies them in order), or null. */
export function groupOf(config: ActivationConfig, module: string, cls = 'Linear'): ActivationGroup | null {
  if (matches(module, cls, config.ignore)) return null;
  let found: ActivationGroup | null = null;
  for (const g of config.groups) if (matches(module, cls, g.targets)) found = g;
  return found;
}

/** A short human description of activation arguments, e.g. `FP8 dynamic per-token`. */
export function describeArgs(a: ActivationArgs): string {
  const kind = a.type === 'float' ? (a.numBits === 4 ? 'FP4' : `FP${a.numBits}`) : `INT${a.numBits}`;
  const how = a.dynamic === 'local' ? 'dynamic local' : a.dynamic ? 'dynamic' : 'static';
  const strategy = a.strategy === 'token' ? 'per-token' : a.strategy === 'tensor' ? 'per-tensor' : a.groupSize ? `per-group ${a.groupSize}` : a.strategy;
  const scales = a.strategy === 'tensor_group' ? `, ${a.scaleDtype === 'float8_e4m3fn' ? 'FP8 ' : ''}scales under a global scale` : '';
  return `${kind} ${how} ${strategy}${a.symmetric ? '' : ' asymmetric'}${scales}`;
}
