/**
 * Content hashes a saved plan records so `apply` can refuse a stale plan:
 * the recipe's meaning (its IR, so reformatting or comments do not count),
 * the model's config, and the quantc version.
 */
import { createHash } from 'node:crypto';

/** JSON with object keys sorted, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const obj = v as Record<string, unknown>;
      return Object.fromEntries(Object.keys(obj).sort().map((k) => [k, obj[k]]));
    }
    return v;
  });
}

/** `sha256:<hex>` of a string. */
export function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** Hash of a value's canonical JSON, ignoring `origin` spans (display-only data). */
export function hashValue(value: unknown): string {
  return sha256(canonicalJson(value === undefined ? null : stripOrigins(value)));
}

function stripOrigins(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripOrigins);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([k]) => k !== 'origin')
        .map(([k, v]) => [k, stripOrigins(v)]),
    );
  }
  return value;
}
