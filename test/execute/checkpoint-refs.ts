/**
 * llm-compressor checkpoints recorded by the fixture scripts (tensor names,
 * dtypes, shapes and SHA-256 of their bytes, and `quantization_config`),
 * and the check that an `apply` output is that checkpoint.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { expect } from 'vitest';
import { parseSafetensors } from './fixtures.js';

/** A recorded checkpoint. */
export interface CheckpointRef {
  readonly quantization_config: Record<string, unknown>;
  readonly tensors: Record<string, { dtype: string; shape: number[]; sha256: string }>;
}

/** safetensors dtypes as torch names them. */
const DTYPES: Record<string, string> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32', I8: 'int8', I32: 'int32', I64: 'int64', U8: 'uint8', F8_E4M3: 'float8_e4m3fn' };

/** A gzipped JSON reference. */
export async function loadRef<T extends CheckpointRef>(path: string): Promise<T> {
  return JSON.parse(gunzipSync(await readFile(path)).toString('utf8')) as T;
}

/**
 * Every tensor of `out` and its config as `ref` records them; tensors
 * `looseBytes` names are checked for name, dtype and shape only (GPTQ's
 * codes, which float order may move: gptq-fidelity.test.ts judges them).
 */
export async function expectCheckpoint(ref: CheckpointRef, out: string, looseBytes: (name: string) => boolean = () => false): Promise<void> {
  const got = parseSafetensors(new Uint8Array(await readFile(join(out, 'model.safetensors'))));
  expect([...got.keys()].sort()).toEqual(Object.keys(ref.tensors).sort());
  for (const [name, r] of Object.entries(ref.tensors)) {
    const g = got.get(name)!;
    expect({ name, dtype: DTYPES[g.dtype] ?? g.dtype, shape: g.shape }).toEqual({ name, dtype: r.dtype, shape: r.shape });
    if (!looseBytes(name)) expect(createHash('sha256').update(g.bytes).digest('hex'), `${name} bytes differ`).toBe(r.sha256);
  }
  const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { quantization_config: unknown };
  expect(config.quantization_config).toEqual(ref.quantization_config);
}
