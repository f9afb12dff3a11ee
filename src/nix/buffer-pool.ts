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
  ) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Only buffers nothing reads or writes any more, and that came from `take`. */
  give(buffers: Iterable<Buffer>): void {
    for (const buffer of buffers) if (this.free.length < this.maxKept) this.free.push(buffer);
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
