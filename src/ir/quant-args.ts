/**
 * compressed-tensors `QuantizationArgs` construction: field defaults and the
 * model validator's inference (strategy from group_size, zero-point dtype,
 * default observers), so a partial args mapping becomes the exact object
 * compressed-tensors 0.18 would build. Assumes the args passed validation.
 */
import type { ActivationOrdering, QuantizationArgs, QuantizationStrategy } from './types.js';

/** Observer used for static args when none is given (c-t ≥ 0.14). */
export const DEFAULT_STATIC_OBSERVER = 'memoryless_minmax';

/** `"float8_e4m3fn"` and `"torch.float8_e4m3fn"` both name the same dtype; c-t writes the latter. */
export function normalizeDtype(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  return value.startsWith('torch.') ? value : `torch.${value}`;
}

/** c-t `ActivationOrdering`: `dynamic` is `group`, `static` is `weight`, true is `group`, false is none. */
export function normalizeActorder(value: unknown): 'group' | 'weight' | null {
  if (value === true || value === 'group' || value === 'dynamic') return 'group';
  if (value === 'weight' || value === 'static') return 'weight';
  return null;
}

/** An `actorder` value as compressed-tensors stores it: the enum member it names (`true` is `group`). */
export function actorderAsWritten(value: unknown): ActivationOrdering | null {
  if (value === true) return 'group';
  return value === 'group' || value === 'dynamic' || value === 'weight' || value === 'static' ? value : null;
}

/** Whether an ordering is group ordering (`group` or its alias `dynamic`). */
export function isGroupOrdering(value: ActivationOrdering | null): boolean {
  return value === 'group' || value === 'dynamic';
}

/** `block_structure` as a list, accepting c-t's `"128x128"` string form. */
export function normalizeBlockStructure(value: unknown): number[] | null {
  if (Array.isArray(value)) return value.map(Number);
  if (typeof value === 'string') return value.split('x').map((s) => Number(s.trim()));
  return null;
}

/** The strategy c-t infers when none is given: from `group_size`. */
export function inferStrategy(strategy: unknown, groupSize: unknown): QuantizationStrategy | null {
  if (typeof strategy === 'string') return strategy.toLowerCase() as QuantizationStrategy;
  if (groupSize === null || groupSize === undefined) return 'tensor';
  if (typeof groupSize === 'number' && groupSize > 0) return 'group';
  if (groupSize === -1) return 'channel';
  return null;
}

/** Builds full QuantizationArgs from a (validated) partial mapping. */
export function resolveQuantArgs(raw: Readonly<Record<string, unknown>>): QuantizationArgs {
  const numBits = typeof raw.num_bits === 'number' ? raw.num_bits : 8;
  const type = typeof raw.type === 'string' ? (raw.type.toLowerCase() as 'int' | 'float') : 'int';
  const symmetric = typeof raw.symmetric === 'boolean' ? raw.symmetric : true;
  const groupSize = typeof raw.group_size === 'number' ? raw.group_size : null;
  const dynamic = raw.dynamic === true || raw.dynamic === 'local' ? raw.dynamic : false;
  const given = typeof raw.observer === 'string' ? raw.observer : null;
  let observer: string | null;
  if (dynamic === true) observer = null;
  else if (dynamic === 'local') observer = given ?? 'minmax';
  else observer = given ?? DEFAULT_STATIC_OBSERVER;
  let zpDtype: string | null = null;
  if (!symmetric) zpDtype = normalizeDtype(raw.zp_dtype) ?? (type === 'float' ? 'torch.float8_e4m3fn' : 'torch.int8');
  return {
    num_bits: numBits,
    type,
    symmetric,
    group_size: groupSize,
    strategy: inferStrategy(raw.strategy, groupSize),
    block_structure: normalizeBlockStructure(raw.block_structure),
    dynamic,
    actorder: actorderAsWritten(raw.actorder),
    scale_dtype: normalizeDtype(raw.scale_dtype),
    zp_dtype: zpDtype,
    observer,
    observer_kwargs: isRecord(raw.observer_kwargs) ? raw.observer_kwargs : {},
  };
}

/** True for a plain JSON object. */
export function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
