/**
 * Streaming safetensors reader: parses only the JSON header of each shard
 * and reads single tensors by byte offset, so a checkpoint larger than RAM
 * can be processed one tensor at a time.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DTYPE_BYTES, isSafetensorsDtype, type SafetensorsDtype } from './dtypes.js';

/** Where one tensor lives on disk. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute path of the shard. */
  readonly file: string;
  /** Absolute byte offset of the data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** Every tensor of a checkpoint folder, by name, in header order. */
export interface CheckpointIndex {
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  /** Shard file names relative to the folder (the files `apply` replaces). */
  readonly weightFiles: readonly string[];
  /** Total size of tensor data in bytes. */
  readonly totalBytes: number;
}

/** A malformed or unreadable checkpoint; the message names the file. */
export class CheckpointError extends Error {}

/** Parses the header of one `.safetensors` file. */
export async function readSafetensorsHeader(file: string): Promise<TensorEntry[]> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > size - 8 || headerLen > 100_000_000) throw new CheckpointError(`${file}: invalid safetensors header length ${headerLen}`);
    const headerBuf = Buffer.alloc(headerLen);
    await fh.read(headerBuf, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new CheckpointError(`${file}: safetensors header is not valid JSON`);
    }
    const base = 8 + headerLen;
    const out: TensorEntry[] = [];
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const info = raw as { dtype: string; shape: number[]; data_offsets: [number, number] };
      if (!isSafetensorsDtype(info.dtype)) throw new CheckpointError(`${file}: tensor ${name} has unsupported dtype ${info.dtype}`);
      const [begin, end] = info.data_offsets;
      const count = info.shape.reduce((a, b) => a * b, 1);
      if (end - begin !== count * DTYPE_BYTES[info.dtype] || base + end > size) {
        throw new CheckpointError(`${file}: tensor ${name} has inconsistent offsets`);
      }
      out.push({ name, dtype: info.dtype, shape: info.shape, file, offset: base + begin, byteLength: end - begin });
    }
    return out;
  } finally {
    await fh.close();
  }
}

/**
 * Indexes a model folder: `model.safetensors.index.json` when present, else
 * every `*.safetensors` file in it.
 */
export async function openCheckpoint(dir: string): Promise<CheckpointIndex> {
  let files: string[];
  try {
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    files = [...new Set(Object.values(index.weight_map))];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new CheckpointError(`${join(dir, 'model.safetensors.index.json')}: ${(e as Error).message}`);
    const { readdir } = await import('node:fs/promises');
    files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
  }
  if (files.length === 0) throw new CheckpointError(`${dir}: no .safetensors files`);
  const tensors = new Map<string, TensorEntry>();
  let totalBytes = 0;
  for (const f of files) {
    try {
      await stat(join(dir, f));
    } catch (e) {
      throw new CheckpointError(`${join(dir, f)}: the shard ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `cannot be read (${(e as Error).message})`}; model.safetensors.index.json lists it`);
    }
    for (const t of await readSafetensorsHeader(join(dir, f))) {
      tensors.set(t.name, t);
      totalBytes += t.byteLength;
    }
  }
  return { tensors, weightFiles: files, totalBytes };
}

/**
 * A buffer of its own (transferable to a worker) that the caller fills
 * completely: not zeroed first, which would be one more pass over memory.
 */
function unzeroed(byteLength: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(byteLength);
  return new Uint8Array(b.buffer, b.byteOffset, byteLength);
}

/** A byte range of a file: a tensor's, or part of one (named in errors by `name` when it has one). */
export type FileRange = Pick<TensorEntry, 'file' | 'offset' | 'byteLength'> & { readonly name?: string };

/** The error of a read that found the end of the file before the range's end. */
function endOfFile(range: FileRange): CheckpointError {
  return new CheckpointError(`${range.file}: unexpected end of file reading ${range.name ?? `${range.byteLength} bytes at ${range.offset}`}`);
}

/** Reads one tensor's raw bytes, or any byte range of a file, into `into` when given (exactly `entry.byteLength` bytes). */
export async function readTensorBytes(entry: FileRange, into?: Uint8Array | null): Promise<Uint8Array> {
  const fh = await open(entry.file, 'r');
  try {
    const buf = into ?? unzeroed(entry.byteLength);
    let done = 0;
    while (done < entry.byteLength) {
      const { bytesRead } = await fh.read(buf, done, entry.byteLength - done, entry.offset + done);
      if (bytesRead === 0) throw endOfFile(entry);
      done += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/**
 * {@link readTensorBytes} blocking its thread, for worker threads: their
 * reads then run beside each other instead of queueing for the process's
 * few I/O threads.
 */
export function readTensorBytesSync(entry: FileRange, into?: Uint8Array | null): Uint8Array {
  const fd = openSync(entry.file, 'r');
  try {
    const buf = into ?? unzeroed(entry.byteLength);
    let done = 0;
    while (done < entry.byteLength) {
      const bytesRead = readSync(fd, buf, done, entry.byteLength - done, entry.offset + done);
      if (bytesRead === 0) throw endOfFile(entry);
      done += bytesRead;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Reads one tensor's bytes in chunks of at most `chunkBytes` (for copying large tensors). */
export async function* readTensorChunks(entry: TensorEntry, chunkBytes = 64 * 1024 * 1024): AsyncGenerator<Uint8Array> {
  const fh = await open(entry.file, 'r');
  try {
    for (let at = 0; at < entry.byteLength; at += chunkBytes) {
      const len = Math.min(chunkBytes, entry.byteLength - at);
      const buf = new Uint8Array(len);
      let done = 0;
      while (done < len) {
        const { bytesRead } = await fh.read(buf, done, len - done, entry.offset + at + done);
        if (bytesRead === 0) throw endOfFile(entry);
        done += bytesRead;
      }
      yield buf;
    }
  } finally {
    await fh.close();
  }
}
