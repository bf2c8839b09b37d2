import { describe, expect, test } from 'vitest';
import { BufferPool } from '../../src/execute/buffer-pool.js';

describe('BufferPool', () => {
  test('hands back buffers of the exact size, each once', () => {
    const pool = new BufferPool(1024);
    expect(pool.take(16)).toBeNull();
    const a = new Uint8Array(16);
    pool.give(a);
    expect(pool.take(8)).toBeNull();
    const b = pool.take(16)!;
    expect(b.buffer).toBe(a.buffer);
    expect(pool.take(16)).toBeNull();
  });

  test('keeps no views into larger buffers, nothing beyond its size', () => {
    const pool = new BufferPool(32);
    pool.give(new Uint8Array(64).subarray(0, 16));
    expect(pool.take(16)).toBeNull();
    pool.give(new Uint8Array(64));
    expect(pool.take(64)).toBeNull();
    pool.give(new Uint8Array(16));
    pool.give(new Uint8Array(16));
    pool.give(new Uint8Array(16));
    expect([pool.take(16), pool.take(16), pool.take(16)].filter((b) => b !== null)).toHaveLength(2);
  });

  test('a size that does not fit drops the sizes given back longest ago, never its own', () => {
    const pool = new BufferPool(64);
    const [a, b, c] = [new Uint8Array(16), new Uint8Array(16), new Uint8Array(24)];
    pool.give(a);
    pool.give(b);
    pool.give(c);
    // 56 held; a 32-byte buffer needs room: one 16 goes, then the other (the 24 was given back last).
    pool.give(new Uint8Array(32));
    expect(pool.take(16)).toBeNull();
    expect(pool.take(24)!.buffer).toBe(c.buffer);
    expect(pool.take(32)).not.toBeNull();
    // Its own size is never dropped to make room for itself: the third 32 stays out.
    const pool2 = new BufferPool(64);
    for (let i = 0; i < 3; i++) pool2.give(new Uint8Array(32));
    expect([pool2.take(32), pool2.take(32), pool2.take(32)].filter((x) => x !== null)).toHaveLength(2);
  });
});
