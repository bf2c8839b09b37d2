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
});
