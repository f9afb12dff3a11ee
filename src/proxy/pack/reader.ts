/**
 * Reads a restored pack: the index at once, then every NAR in the background, each decompressed
 * and hashed against the NarHash and NarSize its index entry states. A NAR is handed out only once
 * it passed; the first one that fails marks the whole pack corrupt, and nothing of it not yet
 * handed out ever is (the job then builds what it needs).
 */
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BufferPool, sendFileRange } from '../../nix/buffer-pool.js';
import { createNarHasher } from '../../nix/nar-hasher.js';
import { StorePath } from '../../nix/store-path.js';
import {
  dataSize,
  PACK_DIR,
  PACK_INDEX,
  PACK_NARS,
  parseIndex,
  PackFormatError,
  type PackEntry,
  type PackIndex,
} from './format.js';

/** Read size while verifying: big reads keep the hashing pass cheap. */
const READ_BYTES = 1024 * 1024;
/**
 * NARs are served from reused buffers, two per download: a read stream's fresh 256 KiB per read
 * was another GiB of buffers per GiB served, each such GiB tens of V8's full collections.
 */
const SEND_BUFFERS = new BufferPool(256 * 1024, 32, 10_000);

export class PackCorruptError extends Error {}

export class PackReader {
  private readonly byHashPart = new Map<string, PackEntry>();
  private readonly byNarHash = new Map<string, PackEntry>();
  /** Entries verified so far: NARs before this index passed. */
  private verifiedUpTo = 0;
  private corruption: PackCorruptError | undefined;
  private waiters: (() => void)[] = [];
  private closed = false;

  private constructor(
    readonly index: PackIndex,
    private readonly narsFile: string,
  ) {
    for (const entry of index.entries) {
      this.byHashPart.set(StorePath.parse(entry.path).hashPart, entry);
      this.byNarHash.set(entry.narHash.nix32, entry);
    }
  }

  /** Opens `<root>/sluice-pack/`: checks the index and that nars.zst is as long as it says. */
  static async open(root: string): Promise<PackReader> {
    const dir = join(root, PACK_DIR);
    const index = parseIndex(await readFile(join(dir, PACK_INDEX), 'utf8'));
    const narsFile = join(dir, PACK_NARS);
    const size = (await stat(narsFile)).size;
    if (size !== dataSize(index))
      throw new PackFormatError(`${PACK_NARS} is ${size} bytes, but the index describes ${dataSize(index)}`);
    return new PackReader(index, narsFile);
  }

  get corrupt(): string | undefined {
    return this.corruption?.message;
  }

  /** Bytes of compressed NARs in the pack. */
  get bytes(): number {
    return dataSize(this.index);
  }

  entryForHashPart(hashPart: string): PackEntry | undefined {
    return this.corruption ? undefined : this.byHashPart.get(hashPart);
  }

  entryForNarHash(narHashNix32: string): PackEntry | undefined {
    return this.byNarHash.get(narHashNix32);
  }

  /** A pack whose NARs are still arriving (`consume`): they are written to `narsFile` as they pass. */
  static streaming(index: PackIndex, narsFile: string): PackReader {
    return new PackReader(index, narsFile);
  }

  /** Hashes every NAR of the file in order; resolves when all passed or one failed (then `corrupt` says why). */
  async verify(): Promise<void> {
    const stream = createReadStream(this.narsFile, { highWaterMark: READ_BYTES });
    try {
      await this.check(stream);
    } finally {
      stream.destroy();
    }
  }

  /** Takes the NARs as they arrive: each piece is written to the pack's file, then hashed. */
  async consume(source: AsyncIterable<Buffer>): Promise<void> {
    const sink = await open(this.narsFile, 'w');
    try {
      await this.check(source, sink);
    } finally {
      await sink.close();
    }
  }

  /** Marks the pack unusable from here on (its download broke off). */
  fail(message: string): void {
    this.corruption ??= new PackCorruptError(message);
    this.wake();
  }

  private async check(source: AsyncIterable<Buffer>, sink?: FileHandle): Promise<void> {
    const entries = this.index.entries;
    let position = 0;
    let current = 0;
    let hasher = entries.length > 0 ? createNarHasher('zstd') : undefined;
    try {
      for await (const chunk of source) {
        if (this.closed || this.corruption) return;
        if (position + chunk.length > dataSize(this.index))
          throw new PackCorruptError(`${PACK_NARS} holds more than the index describes`);
        if (sink) await sink.write(chunk);
        let at = 0;
        while (at < chunk.length && current < entries.length) {
          const entry = entries[current]!;
          const end = entry.offset + entry.size;
          const take = Math.min(chunk.length - at, end - position);
          if (take > 0) await hasher!.write(chunk.subarray(at, at + take));
          at += take;
          position += take;
          if (position === end) {
            this.compare(entry, await hasher!.end());
            this.verifiedUpTo = ++current;
            this.wake();
            hasher = current < entries.length ? createNarHasher('zstd') : undefined;
          }
        }
      }
      if (current < entries.length)
        throw new PackCorruptError(`${PACK_NARS} ended before ${entries[current]!.path}`);
    } catch (e) {
      hasher?.destroy();
      const entry = entries[current];
      this.corruption =
        e instanceof PackCorruptError
          ? e
          : new PackCorruptError(
              `the NAR of ${entry?.path ?? 'an entry'} is corrupt: ${(e as Error).message}`,
            );
      this.wake();
    }
  }

  private compare(entry: PackEntry, digest: { narHash: { nix32: string }; narSize: number }): void {
    if (digest.narSize !== entry.narSize || digest.narHash.nix32 !== entry.narHash.nix32) {
      throw new PackCorruptError(
        `the NAR of ${entry.path} does not match its index entry (NarHash sha256:${digest.narHash.nix32}, ${digest.narSize} bytes; expected ${entry.narHash.toString()}, ${entry.narSize} bytes)`,
      );
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves once `entry`'s NAR passed its check; rejects if the pack turned out corrupt first. */
  async verified(entry: PackEntry): Promise<void> {
    const position = this.index.entries.indexOf(entry);
    while (position >= this.verifiedUpTo) {
      if (this.corruption) throw this.corruption;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Writes the compressed NAR's bytes to `sink` (call `verified` first); `sent` hears of each piece. */
  async send(entry: PackEntry, sink: Writable, sent?: (bytes: number) => void): Promise<void> {
    const file = await open(this.narsFile, 'r');
    try {
      await sendFileRange(file, entry.offset, entry.offset + entry.size, sink, SEND_BUFFERS, sent);
    } finally {
      await file.close();
    }
  }

  close(): void {
    this.closed = true;
    this.corruption ??= new PackCorruptError('the proxy is shutting down');
    this.wake();
  }
}
