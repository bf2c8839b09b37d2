/**
 * Writes tensors across the shards of a {@link ShardLayout} in layout order,
 * opening each shard when its first tensor arrives. Calls are taken in
 * order and may overlap: each tensor's place is settled before the next
 * call's, and the writes themselves run side by side.
 */
import { join } from 'node:path';
import { SafetensorsFileWriter, type ShardLayout } from './safetensors-writer.js';

/** Sequential writer over every shard of a layout. */
export class ShardedWriter {
  private shard = -1;
  private current: SafetensorsFileWriter | null = null;
  /** Settles when the last call has its place (its shard open, its offset taken). */
  private placed: Promise<unknown> = Promise.resolve();
  bytesWritten = 0;

  constructor(
    private readonly dir: string,
    private readonly layout: ShardLayout,
  ) {}

  /** Writes the next tensor (names must follow the layout order). */
  write(name: string, bytes: Uint8Array): Promise<void> {
    return this.writeChunks(name, bytes.byteLength, [bytes]);
  }

  /** Writes the next tensor from consecutive chunks. */
  writeChunks(name: string, byteLength: number, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    const place = this.placed.then(() => this.place(name, byteLength, chunks));
    this.placed = place.catch(() => undefined);
    return place.then((p) => p.written);
  }

  /** Opens the tensor's shard where it starts a new one, and starts its write (returned in an object: not awaited here). */
  private async place(name: string, byteLength: number, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<{ written: Promise<void> }> {
    while (!this.current || this.current.expected === null) {
      if (this.current) await this.current.close();
      this.shard++;
      const s = this.layout.shards[this.shard];
      if (!s) throw new Error(`sharded writer: no shard left for ${name}`);
      this.current = await SafetensorsFileWriter.create(join(this.dir, s.file), s.tensors);
    }
    const written = this.current.writeChunks(name, byteLength, chunks);
    // Awaited by the caller; it must not surface as an unhandled rejection meanwhile.
    written.catch(() => undefined);
    this.bytesWritten += byteLength;
    return { written };
  }

  /** Closes the last shard, creating any (empty) shards not reached yet. */
  async close(): Promise<void> {
    await this.placed;
    if (this.current) await this.current.close();
    for (this.shard++; this.shard < this.layout.shards.length; this.shard++) {
      const s = this.layout.shards[this.shard];
      await (await SafetensorsFileWriter.create(join(this.dir, s.file), s.tensors)).close();
    }
    this.current = null;
  }

  /** Closes any open file without checks (on failure). */
  async abort(): Promise<void> {
    await this.placed;
    await this.current?.abort();
  }
}

/**
 * Writes started without waiting for each to finish, at most `limit` bytes
 * of them unfinished: adding one past the limit waits for the oldest. A
 * failed write fails the `add` or `drain` that waits for it.
 */
export class WriteWindow {
  private readonly queue: { readonly written: Promise<void>; readonly bytes: number }[] = [];
  private bytes = 0;

  constructor(private readonly limit: number) {}

  async add(written: Promise<void>, bytes: number): Promise<void> {
    written.catch(() => undefined);
    this.queue.push({ written, bytes });
    this.bytes += bytes;
    while (this.bytes > this.limit) await this.oldest();
  }

  /** Waits for every write added. */
  async drain(): Promise<void> {
    while (this.queue.length > 0) await this.oldest();
  }

  private async oldest(): Promise<void> {
    const w = this.queue.shift()!;
    this.bytes -= w.bytes;
    await w.written;
  }
}
