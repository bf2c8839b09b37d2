/**
 * Parses safetensors JSON headers and sharded-checkpoint index files into
 * tensor name → shape/dtype, never touching tensor data.
 */
import { error, type Diagnostic, type Result } from '../diagnostics.js';
import { badHeader } from './model-host.js';

/** One tensor as a checkpoint stores it. */
export interface StoredTensor {
  /** safetensors dtype, e.g. `BF16`, `F8_E4M3`, `U8`; empty when only an index names it. */
  readonly dtype: string;
  /** Shape, or undefined when only the index names the tensor (its shard is absent). */
  readonly shape: readonly number[] | undefined;
}

/** Reads one header's tensors into `into`. */
export function parseSafetensorsHeader(path: string, bytes: Uint8Array, into: Map<string, StoredTensor>): Diagnostic | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    return badHeader(path, `its header is not JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return badHeader(path, 'its header is not a JSON object');
  const entries = json as Record<string, unknown>;
  for (const name in entries) {
    if (name === '__metadata__') continue;
    const t = entries[name] as { dtype?: unknown; shape?: unknown };
    if (typeof t !== 'object' || t === null || typeof t.dtype !== 'string' || !Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d))) {
      return badHeader(path, `tensor "${name}" has no valid dtype and shape`);
    }
    into.set(name, { dtype: t.dtype, shape: t.shape as number[] });
  }
  return undefined;
}

/** `model.safetensors.index.json`: tensor name → shard file name. */
export function parseIndex(path: string, text: string): Result<Map<string, string> | undefined> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { value: undefined, diagnostics: [error('checkpoint-index-invalid', `"${path}" is not valid JSON: ${(e as Error).message}.`)] };
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map) || !Object.values(map).every((v) => typeof v === 'string')) {
    return { value: undefined, diagnostics: [error('checkpoint-index-invalid', `"${path}" has no "weight_map" object of tensor name → shard file.`)] };
  }
  return { value: new Map(Object.entries(map as Record<string, string>)), diagnostics: [] };
}
