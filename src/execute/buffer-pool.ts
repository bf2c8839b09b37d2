/**
 * Buffers of weights read by the weight pass, kept for the next weights of
 * the same size: allocating (and the kernel zeroing and mapping) tens of
 * MiB per weight, then freeing it, costs about as much as reading it.
 */

/** Free buffers by byte length, up to a total size. */
export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private held = 0;

  constructor(private readonly maxBytes: number) {}

  /** A buffer of exactly `byteLength` bytes (contents undefined), or null to allocate one. */
  take(byteLength: number): Uint8Array | null {
    const b = this.free.get(byteLength)?.pop();
    if (!b) return null;
    this.held -= byteLength;
    return new Uint8Array(b);
  }

  /** Gives a buffer back once nothing reads it any more; kept while the pool has room. */
  give(bytes: Uint8Array): void {
    const b = bytes.buffer as ArrayBuffer;
    // Views into larger buffers and detached (transferred) ones are not kept.
    if (bytes.byteOffset !== 0 || b.byteLength !== bytes.byteLength || b.byteLength === 0 || this.held + b.byteLength > this.maxBytes) return;
    let list = this.free.get(b.byteLength);
    if (!list) this.free.set(b.byteLength, (list = []));
    list.push(b);
    this.held += b.byteLength;
  }
}
