/**
 * Writes tensors across the shards of a {@link ShardLayout} in layout order,
 * opening each shard when its first tensor arrives.
 */
import { join } from 'node:path';
import { SafetensorsFileWriter, type ShardLayout } from './safetensors-writer.js';

/** Sequential writer over every shard of a layout. */
export class ShardedWriter {
  private shard = -1;
  private current: SafetensorsFileWriter | null = null;
  bytesWritten = 0;

  constructor(
    private readonly dir: string,
    private readonly layout: ShardLayout,
  ) {}

  /** Writes the next tensor (names must follow the layout order). */
  async write(name: string, bytes: Uint8Array): Promise<void> {
    await this.writeChunks(name, bytes.byteLength, [bytes]);
  }

  /** Writes the next tensor from consecutive chunks. */
  async writeChunks(name: string, byteLength: number, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    while (!this.current || this.current.expected === null) {
      if (this.current) await this.current.close();
      this.shard++;
      const s = this.layout.shards[this.shard];
      if (!s) throw new Error(`sharded writer: no shard left for ${name}`);
      this.current = await SafetensorsFileWriter.create(join(this.dir, s.file), s.tensors);
    }
    await this.current.writeChunks(name, byteLength, chunks);
    this.bytesWritten += byteLength;
  }

  /** Closes the last shard, creating any (empty) shards not reached yet. */
  async close(): Promise<void> {
    if (this.current) await this.current.close();
    for (this.shard++; this.shard < this.layout.shards.length; this.shard++) {
      const s = this.layout.shards[this.shard];
      await (await SafetensorsFileWriter.create(join(this.dir, s.file), s.tensors)).close();
    }
    this.current = null;
  }

  /** Closes any open file without checks (on failure). */
  async abort(): Promise<void> {
    await this.current?.abort();
  }
}
