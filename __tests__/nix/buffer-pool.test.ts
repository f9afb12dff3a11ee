/** The pool of reused buffers that NAR bytes pass through in the server and the proxy. */
import { randomBytes } from 'node:crypto';
import { constants, createZstdCompress, zstdDecompressSync } from 'node:zlib';
import { describe, expect, it } from '@jest/globals';
import {
  BufferPool,
  copyInto,
  releasedAfterUse,
  releaseMemory,
  releaseSpent,
} from '../../src/nix/buffer-pool.js';

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

describe('releasing spent memory', () => {
  it('frees the memory of a buffer that has its own at once, and leaves small (pooled) ones alone', () => {
    const own = Buffer.allocUnsafeSlow(256 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    releaseMemory(own);
    expect(own.length).toBe(0);
    expect(process.memoryUsage().arrayBuffers).toBeLessThanOrEqual(before - 256 * 1024);
    releaseMemory(own);
    expect(own.length).toBe(0);

    // Both come from Node's shared pool: releasing one must not touch the other.
    const [a, b] = [Buffer.from('first'), Buffer.from('second')];
    expect(a.buffer).toBe(b.buffer);
    releaseMemory(a);
    releaseSpent(b);
    expect([a.toString(), b.toString()]).toEqual(['first', 'second']);
  });

  it("frees a zstd stream's output buffers as each fills, and the output stays whole", async () => {
    const input = randomBytes(2 * 1024 * 1024);
    const compressor = createZstdCompress({
      chunkSize: 128 * 1024,
      params: { [constants.ZSTD_c_compressionLevel]: 1 },
    });
    const copies: Buffer[] = [];
    const slices: Buffer[] = [];
    compressor.on('data', (chunk: Buffer) => {
      copies.push(Buffer.from(chunk));
      slices.push(chunk);
      releaseSpent(chunk);
    });
    await new Promise((resolve, reject) => compressor.on('end', resolve).on('error', reject).end(input));
    expect(zstdDecompressSync(Buffer.concat(copies)).equals(input)).toBe(true);
    const buffers = new Set(slices.map((slice) => slice.buffer as ArrayBuffer));
    const freed = [...buffers].filter((memory) => memory.byteLength === 0);
    // Every buffer zlib filled was freed; only the last, partly filled one (if any) was not.
    expect(freed.length).toBeGreaterThanOrEqual(buffers.size - 1);
    expect(freed.length).toBeGreaterThan(10);
  });

  it('frees each chunk of a body once the next is asked for', async () => {
    const chunks = [Buffer.alloc(16 * 1024, 1), Buffer.alloc(16 * 1024, 2)];
    async function* source(): AsyncGenerator<Buffer> {
      yield* chunks;
    }
    const body = releasedAfterUse(source())[Symbol.asyncIterator]();
    expect((await body.next()).value).toEqual(Buffer.alloc(16 * 1024, 1));
    expect(chunks.map((chunk) => chunk.length)).toEqual([16 * 1024, 16 * 1024]);
    await body.next();
    expect(chunks.map((chunk) => chunk.length)).toEqual([0, 16 * 1024]);
    expect((await body.next()).done).toBe(true);
    expect(chunks.map((chunk) => chunk.length)).toEqual([0, 0]);
  });
});
