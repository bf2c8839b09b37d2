/**
 * Loads the data-free reference checkpoints (test/fixtures/datafree): the
 * gzipped input models are unpacked into a temporary folder for `apply`, and
 * llm-compressor's outputs are parsed in memory for comparison.
 */
import { mkdtemp, mkdir, readdir, readFile, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** Root of the reference fixtures. */
export const DATAFREE = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'datafree');

/** One tensor of a reference checkpoint. */
export interface RefTensor {
  readonly dtype: string;
  readonly shape: number[];
  readonly bytes: Uint8Array;
}

/** The manifest: model → ignore patterns and schemes. */
export async function manifest(): Promise<Record<string, { ignore: string[]; schemes: string[] }>> {
  return JSON.parse(await readFile(join(DATAFREE, 'manifest.json'), 'utf8')) as Record<string, { ignore: string[]; schemes: string[] }>;
}

/** Parses safetensors bytes into tensors by name. */
export function parseSafetensors(buf: Uint8Array): Map<string, RefTensor> {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.readBigUInt64LE(0));
  const header = JSON.parse(view.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, RefTensor>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: t.dtype, shape: t.shape, bytes: new Uint8Array(view.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1])) });
  }
  return out;
}

/** The safetensors bytes of `tensors`, in their order (the inverse of {@link parseSafetensors}). */
export function serializeSafetensors(tensors: ReadonlyMap<string, RefTensor>): Buffer {
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.bytes.length] };
    at += t.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([size, json, ...[...tensors.values()].map((t) => Buffer.from(t.bytes))]);
}

/** Reads a fixture folder's (gzipped) weights. */
export async function readRefTensors(dir: string): Promise<Map<string, RefTensor>> {
  return parseSafetensors(gunzipSync(await readFile(join(dir, 'model.safetensors.gz'))));
}

/** Unpacks a fixture folder into a fresh temporary model folder and returns its path. */
export async function unpackModel(dir: string): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), 'quantc-model-'));
  await mkdir(out, { recursive: true });
  for (const f of await readdir(dir)) {
    if (f === 'model.safetensors.gz') await writeFile(join(out, 'model.safetensors'), gunzipSync(await readFile(join(dir, f))));
    else await copyFile(join(dir, f), join(out, f));
  }
  return out;
}
