/**
 * Buffers of weights read by the weight pass, kept for the next weights of
 * the same size: allocating (and the kernel zeroing and mapping) tens of
 * MiB per weight, then freeing it, costs about as much as reading it.
 */

/**
 * Free buffers by byte length, up to a total size. A buffer that does not
 * fit makes room by dropping buffers of other sizes, those given back
 * longest ago first, so that the pool follows the sizes in use (a model's
 * attention weights, then its larger MLP weights) instead of filling up
 * with the first ones.
 */
export class BufferPool {
  /** By size, the sizes given back longest ago first. */
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

  /** Gives a buffer back once nothing reads it any more; kept if the pool has room, or can make it from other sizes. */
  give(bytes: Uint8Array): void {
    const b = bytes.buffer as ArrayBuffer;
    const size = b.byteLength;
    // Views into larger buffers and detached (transferred) ones are not kept.
    if (bytes.byteOffset !== 0 || size !== bytes.byteLength || size === 0) return;
    const same = this.free.get(size) ?? [];
    const sameBytes = same.length * size;
    if (sameBytes + size > this.maxBytes) return;
    for (const [other, list] of this.free) {
      if (this.held + size <= this.maxBytes) break;
      if (other === size) continue;
      while (list.length > 0 && this.held + size > this.maxBytes) {
        list.pop();
        this.held -= other;
      }
      if (list.length === 0) this.free.delete(other);
    }
    // Most recently given last.
    this.free.delete(size);
    same.push(b);
    this.free.set(size, same);
    this.held += size;
  }
}
