/**
 * Reads the files of a tar stream as they arrive (the archives @actions/cache writes with GNU tar:
 * ustar headers, GNU long names, pax headers), so a pack's index can be read before the rest of
 * the archive is downloaded.
 */

const BLOCK = 512;
/**
 * A GNU long name or a pax header is held in memory whole: a hostile archive could claim gigabytes
 * (zeros compress to almost nothing). Real ones are a path or a few records long.
 */
export const MAX_META_BYTES = 1024 * 1024;

/** Exact-length reads over an async stream of chunks. */
export class ByteReader {
  private buffered: Buffer[] = [];
  private length = 0;
  private done = false;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  /** Waits for at least `n` bytes (fewer only at the end of the stream). */
  private async fill(n: number): Promise<void> {
    while (this.length < n && !this.done) {
      const next = await this.source.next();
      if (next.done) this.done = true;
      else if (next.value.length > 0) {
        this.buffered.push(next.value);
        this.length += next.value.length;
      }
    }
  }

  /** Up to `max` bytes already here or the next chunk's; empty at the end. */
  async some(max: number): Promise<Buffer> {
    await this.fill(1);
    if (this.length === 0) return Buffer.alloc(0);
    const first = this.buffered[0]!;
    const piece = first.length <= max ? first : first.subarray(0, max);
    if (piece === first) this.buffered.shift();
    else this.buffered[0] = first.subarray(max);
    this.length -= piece.length;
    return piece;
  }

  /** Exactly `n` bytes, or fewer if the stream ends first. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const all = Buffer.concat(this.buffered, this.length);
    const out = all.subarray(0, Math.min(n, all.length));
    const rest = all.subarray(out.length);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return out;
  }

  /** `n` bytes as a sequence of pieces; the caller must consume them all. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      const piece = await this.some(Math.min(left, 1024 * 1024));
      if (piece.length === 0) throw new Error(`the archive ended ${left} bytes early`);
      left -= piece.length;
      yield piece;
    }
  }
}

export class TarError extends Error {}

function text(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? field.length : nul).toString('utf8');
}

function size(block: Buffer): number {
  const field = block.subarray(124, 136);
  // GNU base-256 for sizes beyond the 11 octal digits.
  if (field[0]! & 0x80) {
    const value = field.readBigUInt64BE(4);
    if (field[0] !== 0x80 || field.readUIntBE(1, 3) !== 0 || value > BigInt(Number.MAX_SAFE_INTEGER))
      throw new TarError('a base-256 size field is negative or too large');
    return Number(value);
  }
  const octal = text(block, 124, 12).trim();
  const value = octal === '' ? 0 : parseInt(octal, 8);
  if (!Number.isSafeInteger(value)) throw new TarError(`bad size field '${octal}'`);
  return value;
}

function checksumOk(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  return parseInt(text(block, 148, 8).trim(), 8) === sum;
}

function paxPath(content: Buffer): string | undefined {
  for (const record of content.toString('utf8').split('\n')) {
    const match = /^\d+ path=(.*)$/.exec(record);
    if (match) return match[1];
  }
  return undefined;
}

export interface TarFile {
  name: string;
  size: number;
}

/**
 * Calls `onFile` for each regular file, in archive order, with its contents as pieces; `onFile`
 * must consume them all before returning.
 */
export async function readTar(
  reader: ByteReader,
  onFile: (file: TarFile, contents: AsyncGenerator<Buffer>) => Promise<void>,
): Promise<void> {
  let longName: string | undefined;
  for (;;) {
    const block = await reader.read(BLOCK);
    if (block.length < BLOCK) throw new TarError('the archive ended inside a header');
    if (block.every((b) => b === 0)) return;
    if (!checksumOk(block)) throw new TarError('a header checksum does not match');
    const type = String.fromCharCode(block[156]!);
    const length = size(block);
    const padding = (BLOCK - (length % BLOCK)) % BLOCK;
    const prefix = text(block, 257, 6).startsWith('ustar') ? text(block, 345, 155) : '';
    const name = longName ?? (prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100));
    longName = undefined;
    if (type === 'L' || type === 'x') {
      if (length > MAX_META_BYTES)
        throw new TarError(
          `a ${type === 'L' ? 'long name' : 'pax header'} of ${length} bytes (at most ${MAX_META_BYTES})`,
        );
      const content = await reader.read(length + padding);
      longName = type === 'L' ? text(content, 0, length) : paxPath(content.subarray(0, length));
      continue;
    }
    if (type === '0' || type === '\0' || type === '7') {
      await onFile({ name: name.replace(/^\.\//, ''), size: length }, reader.stream(length));
    } else {
      for await (const piece of reader.stream(length)) void piece;
    }
    if (padding > 0) await reader.read(padding);
  }
}
