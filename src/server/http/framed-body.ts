/**
 * A request body of header lines each followed by a counted run of bytes (the path batch), read as
 * it streams: a line at a time, then the bytes as they come, never the whole body in memory.
 */
import { HttpError } from '../../contracts/http-error.js';

const NEWLINE = 0x0a;

export class FramedBody {
  private readonly chunks: AsyncIterator<Buffer>;
  /** Read from the body, not yet taken. */
  private pending: Buffer = Buffer.alloc(0);
  private received = 0;
  private ended = false;

  constructor(
    body: AsyncIterable<Buffer>,
    /** The most the whole body may weigh (413 beyond it). */
    private readonly limit: number,
    private readonly what: string,
  ) {
    this.chunks = body[Symbol.asyncIterator]();
  }

  /** Reads one more chunk into `pending`; false where the body ends. */
  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.chunks.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    this.received += next.value.length;
    if (this.received > this.limit)
      throw new HttpError(413, `${this.what} is larger than the limit of ${this.limit} bytes`, 'too_large');
    this.pending = this.pending.length === 0 ? next.value : Buffer.concat([this.pending, next.value]);
    return true;
  }

  /** The next line without its `\n`; null where the body ends cleanly, before any of a line. */
  async line(maxBytes: number): Promise<string | null> {
    for (let searched = 0; ;) {
      const end = this.pending.indexOf(NEWLINE, searched);
      if (end >= 0 && end <= maxBytes) {
        const text = this.pending.subarray(0, end).toString('utf8');
        this.pending = this.pending.subarray(end + 1);
        return text;
      }
      if (end > maxBytes || this.pending.length > maxBytes)
        throw new HttpError(
          400,
          `a header line of the ${this.what} is longer than ${maxBytes} bytes`,
          'bad_batch',
        );
      searched = this.pending.length;
      if (!(await this.fill())) {
        if (this.pending.length === 0) return null;
        throw new HttpError(400, `the ${this.what} ends inside a header line`, 'truncated');
      }
    }
  }

  /** The next `size` bytes, as they come; a 400 if the body ends before them. */
  async *bytes(size: number): AsyncGenerator<Buffer> {
    for (let left = size; left > 0;) {
      if (this.pending.length === 0 && !(await this.fill()))
        throw new HttpError(400, `the ${this.what} ends ${left} bytes before its NAR does`, 'truncated');
      const taken = this.pending.subarray(0, Math.min(left, this.pending.length));
      this.pending = this.pending.subarray(taken.length);
      left -= taken.length;
      yield taken;
    }
  }
}
