import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { types } from 'node:util';

/**
 * Buffers of one size that NAR bytes pass through, kept for reuse. On the machines Sluice runs
 * on, a fresh buffer per chunk costs more than the copying it serves: its pages fault in, and
 * V8 runs full collections over the churn. Only a bounded number are kept, and with `idleMs`
 * none once the pool has gone unused that long.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly size: number,
    private readonly maxKept: number,
    private readonly idleMs?: number,
    /** Each buffer a whole SharedArrayBuffer, which worker threads can read without a copy. */
    private readonly shared = false,
  ) {}

  take(): Buffer {
    const kept = this.free.pop();
    if (kept) return kept;
    return this.shared ? Buffer.from(new SharedArrayBuffer(this.size)) : Buffer.allocUnsafeSlow(this.size);
  }

  /** Only buffers nothing reads or writes any more, and that came from `take`. */
  give(buffers: Iterable<Buffer>): void {
    for (const buffer of buffers) {
      if (this.free.length < this.maxKept) this.free.push(buffer);
      else if (!this.shared) releaseMemory(buffer);
    }
    if (this.idleMs === undefined) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.clear(), this.idleMs).unref();
  }

  /** Buffers kept for the next `take`s. */
  get kept(): number {
    return this.free.length;
  }

  clear(): void {
    clearTimeout(this.idleTimer);
    this.free.length = 0;
  }
}

/**
 * Frees a buffer's memory now, for a buffer that has memory of its own (not a view into someone
 * else's) and that nothing reads any more. Otherwise such memory is freed when V8 collects the
 * buffer's small JS object: young collections catch most, but a buffer that lived through two of
 * them (an upload waiting for its socket) waits for a full collection, and on a push such memory
 * piled up by tens of MB between them (the daemon ran a full collection every 32 MiB to stay
 * within 100 MB: ~0.5 s of CPU per GiB). Small buffers, which may be slices of Node's shared
 * pool, are left to the collector.
 */
export function releaseMemory(buffer: Buffer): void {
  const memory = buffer.buffer;
  // A slice of the pool never spans all of it, and the pool's memory is `poolSize` bytes.
  const own =
    (buffer.byteOffset === 0 && buffer.length === memory.byteLength) || memory.byteLength > Buffer.poolSize;
  if (own && types.isArrayBuffer(memory) && !memory.detached) memory.transfer(0);
}

/**
 * `releaseMemory` for a chunk that reaches the end of its memory: a socket's chunk (memory of its
 * own), or a zlib stream's output slice that fills the stream's buffer (zlib moves on to a fresh
 * one then, and the slices before it were read already).
 */
export function releaseSpent(chunk: Buffer): void {
  if (chunk.byteOffset + chunk.length === chunk.buffer.byteLength) releaseMemory(chunk);
}

/**
 * The chunks of `source`, each freed (`releaseSpent`) once the next is asked for: for a request
 * body read by one consumer that keeps no chunk (it copies them).
 */
export async function* releasedAfterUse(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    yield chunk;
    releaseSpent(chunk);
  }
}

/**
 * `source` copied into `target` from `targetStart`, as much as fits; returns how many bytes that
 * was (as `Buffer.copy`). `fill` rather than `copy`: when either side is a SharedArrayBuffer's,
 * `copy` goes through V8's `TypedArray.set`, which copies a word at a time with relaxed atomics
 * (about 3x slower here than the native memcpy `fill` uses); the upload path copies every byte
 * into or out of shared stages. The two must not overlap (`copy` allows that; `fill` does not).
 */
export function copyInto(target: Buffer, targetStart: number, source: Buffer): number {
  const count = Math.min(target.length - targetStart, source.length);
  if (count <= 0) return 0;
  target.fill(count === source.length ? source : source.subarray(0, count), targetStart, targetStart + count);
  return count;
}

/**
 * Resolves once `sink` is done with `chunk`, so that its buffer may be reused (for a socket or
 * zlib, once the write callback has run); rejects if the write fails or `sink` closes first.
 */
export function written(sink: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const closed = () => reject(new Error('the destination closed before taking all the bytes'));
    sink.once('close', closed);
    sink.write(chunk, (error) => {
      sink.off('close', closed);
      if (error) reject(error);
      else resolve();
    });
  });
}

/**
 * Sends bytes `start` to `end` (exclusive) of `file` to `sink` through two buffers of `pool`, one
 * read into while the other is being written, rather than a read stream's fresh buffer per read:
 * on a busy machine those allocations (page faults, then full collections) cost more than the
 * copying. `sent` hears of each piece once `sink` took it. The buffers go back to the pool only
 * when every write finished; the caller closes `file`.
 */
export async function sendFileRange(
  file: FileHandle,
  start: number,
  end: number,
  sink: Writable,
  pool: BufferPool,
  sent?: (bytes: number) => void,
): Promise<void> {
  const buffers = [pool.take(), pool.take()];
  let sending: Promise<void> | undefined;
  try {
    for (let position = start, turn = 0; position < end; turn++) {
      const buffer = buffers[turn % 2]!;
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, end - position), position);
      if (bytesRead === 0) throw new Error('the file is shorter than it was when opened');
      position += bytesRead;
      // The buffer read into now was last sent two turns ago, and that write has finished.
      await sending;
      sending = written(sink, buffer.subarray(0, bytesRead)).then(() => sent?.(bytesRead));
      // Awaited after the next read: a client gone meanwhile must not make it an unhandled
      // rejection, which would end the server's process.
      sending.catch(() => undefined);
    }
    await sending;
  } catch (error) {
    // A write still in flight may fail later; its buffer stays with it.
    sending?.catch(() => undefined);
    throw error;
  }
  pool.give(buffers);
}
