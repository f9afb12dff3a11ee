/**
 * Memory for multipart parts on their way to S3. Each upload gathers its body in at most two part
 * buffers, used in turn (one fills while the other's part uploads); a server-wide `PartBudget`
 * caps the bytes all uploads' buffers take together, so many large uploads at once wait for room
 * instead of growing the process past its memory target. Small bodies (most NARs) never touch the
 * budget: their one buffer stays under `UNBUDGETED_BYTES`.
 */

/** A body this small gathers without asking the budget (the upload slots bound how many do). */
export const UNBUDGETED_BYTES = 1024 * 1024;

/** Bytes of part buffers the whole process may hold; takers queue in order for what is freed. */
export class PartBudget {
  private used = 0;
  private readonly queue: { bytes: number; grant: () => void }[] = [];
  /** The most `inUse` has been: what tests compare with `limit`. */
  peak = 0;

  constructor(readonly limit: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes `bytes` now if they are free and nobody waits before us; false otherwise. */
  tryTake(bytes: number): boolean {
    if (this.queue.length > 0 || this.used + bytes > this.limit) return false;
    this.add(bytes);
    return true;
  }

  /** Takes `bytes`, waiting (in order) until other uploads have given enough back. */
  take(bytes: number): Promise<void> {
    if (bytes > this.limit) throw new Error(`a part of ${bytes} bytes exceeds the part buffer budget`);
    if (this.tryTake(bytes)) return Promise.resolve();
    return new Promise((grant) => this.queue.push({ bytes, grant }));
  }

  give(bytes: number): void {
    this.used -= bytes;
    for (let next = this.queue[0]; next && this.used + next.bytes <= this.limit; next = this.queue[0]) {
      this.queue.shift();
      this.add(next.bytes);
      next.grant();
    }
  }

  private add(bytes: number): void {
    this.used += bytes;
    this.peak = Math.max(this.peak, this.used);
  }
}

/**
 * One upload's part buffers, filled in turn. The first grows as the body does, so a small NAR
 * never takes a whole part; once the body outgrows `UNBUDGETED_BYTES` it waits for a part's worth
 * of the budget. A second buffer is taken only if the budget has room at once; otherwise the next
 * part gathers in the same buffer after the previous part has uploaded (`sent`). Waiting only for
 * the first part, never while holding budget, keeps uploads from deadlocking on each other.
 */
export class PartBuffers {
  private current: Buffer | undefined;
  private other: Buffer | undefined;
  private filled = 0;
  /** Budget bytes this upload holds (0, one part or two). */
  private held = 0;

  constructor(
    private readonly partSize: number,
    private readonly budget: PartBudget,
    /** Resolves once the part taken last is stored. */
    private readonly sent: () => Promise<void>,
  ) {}

  get full(): boolean {
    return this.filled === this.partSize;
  }

  /** Copies as much of `chunk` as the part has room for; returns how many bytes that was. */
  async fill(chunk: Buffer): Promise<number> {
    const taken = Math.min(this.partSize - this.filled, chunk.length);
    const needed = this.filled + taken;
    if (!this.current || needed > this.current.length) await this.grow(needed);
    chunk.copy(this.current!, this.filled, 0, taken);
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

  /** Gives the budget back: call once the upload is over, whatever its outcome. */
  release(): void {
    if (this.held > 0) this.budget.give(this.held);
    this.held = 0;
    this.current = this.other = undefined;
  }

  private async grow(needed: number): Promise<void> {
    // After a part has been taken, the next part will be whole too (or the last).
    const whole = this.other?.length === this.partSize;
    if (whole) {
      if (this.held < 2 * this.partSize && this.budget.tryTake(this.partSize)) {
        this.held += this.partSize;
      } else {
        // No room for a second buffer: gather the next part in the one just sent.
        await this.sent();
        this.current = this.other;
        this.other = undefined;
        if (this.current) return;
      }
      this.current = Buffer.allocUnsafe(this.partSize);
      return;
    }
    const size = Math.min(this.partSize, Math.max(2 * (this.current?.length ?? 0), needed, 256 * 1024));
    if (size > UNBUDGETED_BYTES && this.held === 0) {
      await this.budget.take(this.partSize);
      this.held = this.partSize;
    }
    const grown = Buffer.allocUnsafe(size);
    this.current?.copy(grown, 0, 0, this.filled);
    this.current = grown;
  }
}
