/**
 * Streaming safetensors writer. The header (with every offset) is written
 * first from precomputed sizes; tensors then follow in header order, one at a
 * time, so only the tensor being written is in memory.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { SafetensorsDtype } from './dtypes.js';

/** One tensor to be written: its size must be known before any data is. */
export interface OutputTensorSpec {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/** Tensors assigned to shard files, in write order. */
export interface ShardLayout {
  readonly shards: readonly { readonly file: string; readonly tensors: readonly OutputTensorSpec[] }[];
  readonly totalBytes: number;
}

/**
 * Splits tensors into shards of at most `maxShardBytes` (a tensor larger than
 * that gets a shard of its own), named as transformers names them.
 */
export function layoutShards(tensors: readonly OutputTensorSpec[], maxShardBytes: number): ShardLayout {
  const groups: OutputTensorSpec[][] = [];
  let current: OutputTensorSpec[] = [];
  let size = 0;
  let totalBytes = 0;
  for (const t of tensors) {
    if (current.length > 0 && size + t.byteLength > maxShardBytes) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += t.byteLength;
    totalBytes += t.byteLength;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  const n = groups.length;
  const pad = (i: number): string => String(i).padStart(5, '0');
  const shards = groups.map((g, i) => ({
    file: n === 1 ? 'model.safetensors' : `model-${pad(i + 1)}-of-${pad(n)}.safetensors`,
    tensors: g,
  }));
  return { shards, totalBytes };
}

/** The `model.safetensors.index.json` text for a multi-shard layout. */
export function shardIndexJson(layout: ShardLayout): string {
  const map: Record<string, string> = {};
  const names: [string, string][] = [];
  for (const s of layout.shards) for (const t of s.tensors) names.push([t.name, s.file]);
  names.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [k, v] of names) map[k] = v;
  return JSON.stringify({ metadata: { total_size: layout.totalBytes }, weight_map: map }, null, 2) + '\n';
}

/** Encodes the header bytes (length prefix included) for `tensors`. */
export function encodeHeader(tensors: readonly OutputTensorSpec[], metadata: Readonly<Record<string, string>>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.byteLength] };
    offset += t.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = Buffer.alloc(8 + json.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}

/**
 * Bytes written between background flushes to disk. `close()` must flush
 * before the output is renamed into place; flushing as the file grows keeps
 * the disk writing while the pass still computes, so that final flush
 * waits only for the last few hundred megabytes instead of the whole file.
 * `QUANTC_FLUSH_EVERY_MB=0` flushes only at close (to measure the difference).
 */
const FLUSH_EVERY_BYTES = process.env.QUANTC_FLUSH_EVERY_MB === undefined ? 2 ** 28 : Number(process.env.QUANTC_FLUSH_EVERY_MB) * 2 ** 20 || Infinity;

/** Writes one shard: header at creation, then each tensor in order. */
export class SafetensorsFileWriter {
  private next = 0;
  private position: number;
  private unflushed = 0;
  /** The first write that failed: the file is incomplete, and close() says why. */
  private failure: Error | null = null;
  /** Writes not finished yet (see {@link writeChunks}). */
  private readonly inFlight = new Set<Promise<void>>();
  /** The background flush in flight, if any; it settles to its error, if it failed. */
  private flushing: Promise<Error | null> | null = null;

  private constructor(
    private readonly fh: FileHandle,
    private readonly tensors: readonly OutputTensorSpec[],
    headerLength: number,
  ) {
    this.position = headerLength;
  }

  /** Creates `path` and writes the header. */
  static async create(path: string, tensors: readonly OutputTensorSpec[], metadata: Readonly<Record<string, string>> = { format: 'pt' }): Promise<SafetensorsFileWriter> {
    const fh = await open(path, 'wx');
    const header = encodeHeader(tensors, metadata);
    await fh.write(header, 0, header.length, 0);
    return new SafetensorsFileWriter(fh, tensors, header.length);
  }

  /** Name of the tensor the writer expects next, or null when complete. */
  get expected(): string | null {
    return this.next < this.tensors.length ? this.tensors[this.next].name : null;
  }

  /** Appends the next tensor; its name and size must match the header. */
  write(name: string, bytes: Uint8Array): Promise<void> {
    return this.writeChunks(name, bytes.byteLength, [bytes]);
  }

  /**
   * Appends the next tensor from consecutive chunks (for tensors too large
   * to hold at once). Its place is taken when called, so calls may overlap:
   * each writes at its own offset while earlier ones are still writing.
   */
  writeChunks(name: string, byteLength: number, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    const spec = this.tensors[this.next];
    if (!spec || spec.name !== name || spec.byteLength !== byteLength) {
      return Promise.reject(new Error(`safetensors writer: expected ${spec ? `${spec.name} (${spec.byteLength} bytes)` : 'no more tensors'}, got ${name} (${byteLength} bytes)`));
    }
    const at = this.position;
    this.position += byteLength;
    this.next++;
    const written = this.fill(name, at, byteLength, chunks);
    this.inFlight.add(written);
    written.then(
      () => void this.inFlight.delete(written),
      (e: unknown) => {
        this.failure ??= e as Error;
        this.inFlight.delete(written);
      },
    );
    return written;
  }

  private async fill(name: string, at: number, byteLength: number, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    let total = 0;
    for await (const bytes of chunks) {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await this.fh.write(bytes, done, bytes.byteLength - done, at + total + done);
        done += bytesWritten;
      }
      total += bytes.byteLength;
    }
    if (total !== byteLength) throw new Error(`safetensors writer: ${name} got ${total} of ${byteLength} bytes`);
    this.unflushed += byteLength;
    if (this.unflushed >= FLUSH_EVERY_BYTES && this.flushing === null) {
      this.unflushed = 0;
      this.flushing = this.fh.datasync().then(
        () => null,
        (e: unknown) => e as Error,
      );
      // One flush at a time; a failed one is reported by close().
      void this.flushing.then((e) => {
        if (e === null) this.flushing = null;
      });
    }
  }

  /** Waits for the writes in flight, flushes and closes; fails if a write failed or tensors are missing. */
  async close(): Promise<void> {
    const missing = this.expected;
    await Promise.allSettled([...this.inFlight]);
    const failed = this.failure ?? (await this.flushing);
    if (failed) {
      await this.fh.close().catch(() => undefined);
      throw failed;
    }
    await this.fh.sync();
    await this.fh.close();
    if (missing !== null) throw new Error(`safetensors writer: closed before ${missing} was written`);
  }

  /** Closes without checks (used when aborting). */
  async abort(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    await this.flushing;
    await this.fh.close().catch(() => undefined);
  }
}
