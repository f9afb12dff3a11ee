/**
 * Memory for multipart parts on their way to S3. Each upload gathers its body in at most two part
 * buffers, used in turn (one fills while the other's part uploads). The buffers of whole parts
 * come from one server-wide `PartPool`, which allocates at most `limit` bytes of them and hands
 * them from upload to upload: many large uploads at once wait for a buffer instead of growing the
 * process past its memory target, and a freed 16 MiB buffer is reused rather than left for the
 * garbage collector (which frees such external memory late: RSS grew with every upload before).
 * Small bodies (most NARs) never touch the pool: their one buffer stays under `UNPOOLED_BYTES`.
 */
import { copyInto } from '../../nix/buffer-pool.js';

/** A body this small gathers in its own buffer (the upload slots bound how many do at once). */
export const UNPOOLED_BYTES = 1024 * 1024;

/** Part buffers of `partSize` bytes, at most `limit` bytes of them; takers queue in order. */
export class PartPool {
  private readonly free: Buffer[] = [];
  private readonly queue: ((buffer: Buffer) => void)[] = [];
  private allocated = 0;
  private lent = 0;
  /** The most bytes lent out at once: what tests compare with `limit`. */
  peak = 0;

  constructor(
    readonly partSize: number,
    readonly limit: number,
  ) {
    if (limit < partSize) throw new Error('the part buffer budget must hold at least one part');
  }

  /** Bytes of buffers lent to uploads now. */
  get inUse(): number {
    return this.lent * this.partSize;
  }

  /** A buffer now, if there is one to spare and nobody waits before us. */
  tryTake(): Buffer | undefined {
    if (this.queue.length > 0) return undefined;
    let buffer = this.free.pop();
    if (!buffer && (this.allocated + 1) * this.partSize <= this.limit) {
      buffer = Buffer.allocUnsafeSlow(this.partSize);
      this.allocated++;
    }
    if (buffer) this.lend();
    return buffer;
  }

  /** A buffer, waiting (in order) until another upload gives one back. */
  take(): Promise<Buffer> {
    const buffer = this.tryTake();
    return buffer ? Promise.resolve(buffer) : new Promise((grant) => this.queue.push(grant));
  }

  give(buffer: Buffer): void {
    this.lent--;
    const next = this.queue.shift();
    if (next) {
      this.lend();
      next(buffer);
    } else if (this.lent === 0) {
      // No upload needs them: the memory goes back until the next large upload.
      this.allocated -= this.free.length + 1;
      this.free.length = 0;
    } else {
      this.free.push(buffer);
    }
  }

  private lend(): void {
    this.lent++;
    this.peak = Math.max(this.peak, this.inUse);
  }
}

/**
 * One upload's part buffers, filled in turn. The first grows as the body does, so a small NAR
 * never takes a whole part; once the body outgrows `UNPOOLED_BYTES` it waits for a buffer of the
 * pool. A second buffer is taken only if the pool has one to spare at once; otherwise the next
 * part gathers in the same buffer after the previous part has uploaded (`sent`). Waiting only for
 * the first buffer, never while holding one, keeps uploads from deadlocking on each other.
 */
export class PartBuffers {
  private current: Buffer | undefined;
  private other: Buffer | undefined;
  private filled = 0;
  /** The pool's buffers this upload holds (none, one or two). */
  private readonly pooled: Buffer[] = [];

  constructor(
    private readonly pool: PartPool,
    /** Resolves once the part taken last is stored. */
    private readonly sent: () => Promise<void>,
  ) {}

  private get partSize(): number {
    return this.pool.partSize;
  }

  get full(): boolean {
    return this.filled === this.partSize;
  }

  /** Copies as much of `chunk` as the part has room for; returns how many bytes that was. */
  async fill(chunk: Buffer): Promise<number> {
    const taken = Math.min(this.partSize - this.filled, chunk.length);
    const needed = this.filled + taken;
    if (!this.current || needed > this.current.length) await this.grow(needed);
    copyInto(this.current!, this.filled, chunk.subarray(0, taken));
    this.filled = needed;
    return taken;
  }

  /**
   * The bytes gathered, as a part; the other buffer (if any) gathers next. A part's buffer is
   * written into again only after the part has uploaded.
   */
  take(): Buffer {
    const buffer = this.current ?? Buffer.alloc(0);
    const part = buffer.subarray(0, this.filled);
    this.current = this.other;
    this.other = buffer;
    this.filled = 0;
    return part;
  }

  /** Gives the pool's buffers back: once the upload is over (or only reads on), whatever its outcome. */
  release(): void {
    for (const buffer of this.pooled.splice(0)) this.pool.give(buffer);
    this.current = this.other = undefined;
  }

  private async grow(needed: number): Promise<void> {
    if (this.other?.length === this.partSize) {
      // After a part has been taken, the next part will be whole too (or the last).
      const second = this.pooled.length < 2 ? this.pool.tryTake() : undefined;
      if (second) {
        this.pooled.push(second);
        this.current = second;
      } else {
        // No buffer to spare: gather the next part in the one just sent, once it is stored.
        await this.sent();
        this.current = this.other;
        this.other = undefined;
      }
      return;
    }
    const size = Math.min(this.partSize, Math.max(2 * (this.current?.length ?? 0), needed, 256 * 1024));
    const grown = size > UNPOOLED_BYTES ? await this.pool.take() : Buffer.allocUnsafe(size);
    if (size > UNPOOLED_BYTES) this.pooled.push(grown);
    if (this.current) copyInto(grown, 0, this.current.subarray(0, this.filled));
    this.current = grown;
  }
}
