/** The pool of reused buffers that NAR bytes pass through in the server and the proxy. */
import { describe, expect, it } from '@jest/globals';
import { BufferPool, copyInto } from '../../src/nix/buffer-pool.js';

describe('BufferPool', () => {
  it('hands out buffers of its size, keeps no more than its bound, and none once idle', async () => {
    const pool = new BufferPool(1024, 2, 50);
    const buffers = [pool.take(), pool.take(), pool.take()];
    expect(new Set(buffers).size).toBe(3);
    expect(buffers.map((buffer) => buffer.length)).toEqual([1024, 1024, 1024]);
    pool.give(buffers);
    expect(pool.kept).toBe(2);
    expect(buffers).toContain(pool.take());
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(pool.kept).toBe(0);
  });

  it('without an idle limit, keeps what it was given', async () => {
    const pool = new BufferPool(1024, 4);
    const buffer = pool.take();
    pool.give([buffer]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(pool.kept).toBe(1);
    expect(pool.take()).toBe(buffer);
  });
});

describe('copyInto', () => {
  it('copies as much as fits, into shared and plain buffers alike, as Buffer.copy does', () => {
    const source = Buffer.from('0123456789');
    for (const target of [Buffer.from(new SharedArrayBuffer(8)), Buffer.alloc(8)]) {
      target.fill('.');
      expect(copyInto(target, 2, source.subarray(0, 3))).toBe(3);
      expect(target.toString()).toBe('..012...');
      // Only what fits.
      expect(copyInto(target, 5, source)).toBe(3);
      expect(target.toString()).toBe('..012012');
      expect(copyInto(target, 8, source)).toBe(0);
      expect(copyInto(target, 0, Buffer.alloc(0))).toBe(0);
      expect(target.toString()).toBe('..012012');
    }
  });
});
