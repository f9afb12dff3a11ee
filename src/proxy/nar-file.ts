/**
 * Makes the compressed NAR file of one store path in a single pass: the NAR (dumped in-process) →
 * size count → compressor → sha256 + size of what is written → a temp file (memory for small
 * NARs). The file's hash names it on the server (`nar/<FileHash>.nar.<ext>`), so it must exist
 * before the upload starts.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Hash } from '../nix/hash.js';
import { createCompressor, HashingStream, NAR_EXTENSIONS } from '../nix/nar.js';
import { ByteCounter } from './byte-counter.js';
import type { PushCompression } from './config.js';
import { dumpNar } from './nar-dump.js';
import type { PathInfo } from './store.js';

/** Fast zstd: pushing must keep up with the build; ratios barely differ from the default level. */
const ZSTD_LEVEL = 1;
/** Read size of a temp file being uploaded: fewer, larger writes to the socket. */
const UPLOAD_CHUNK_BYTES = 256 * 1024;

function compressor(compression: PushCompression): Duplex {
  return createCompressor(compression, compression === 'zstd' ? { level: ZSTD_LEVEL } : {});
}

/** NARs up to this size are compressed into memory: a temp file per small path costs more than it saves. */
const IN_MEMORY_MAX_NAR_BYTES = 1024 * 1024;

export interface NarFile {
  /** `nar/<filehash>.nar<ext>`, the URL in the narinfo. */
  url: string;
  fileHash: Hash;
  fileSize: number;
  /** The compressed file, afresh for each attempt. */
  body(): Readable | Buffer;
  remove(): Promise<void>;
}

/** Collects a small stream's bytes. */
class Collector extends Writable {
  private readonly chunks: Buffer[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.chunks.push(chunk);
    done();
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export async function makeNarFile(
  info: PathInfo,
  compression: PushCompression,
  dir: string,
  signal?: AbortSignal,
): Promise<NarFile> {
  const inMemory = info.narSize <= IN_MEMORY_MAX_NAR_BYTES;
  const path = join(dir, `${randomBytes(8).toString('hex')}.nar.tmp`);
  const remove = (): Promise<void> => (inMemory ? Promise.resolve() : rm(path, { force: true }));
  const sink = inMemory ? new Collector() : createWriteStream(path);
  const nar = new ByteCounter();
  const file = new HashingStream();
  try {
    await pipeline(dumpNar(info.path), nar, compressor(compression), file, sink, { signal });
  } catch (e) {
    await remove();
    throw e;
  }
  if (nar.bytes !== info.narSize) {
    await remove();
    throw new Error(`the NAR of ${info.path} is ${nar.bytes} bytes, but the store says ${info.narSize}`);
  }
  const fileHash = file.hash();
  const bytes = sink instanceof Collector ? sink.bytes() : undefined;
  return {
    url: `nar/${fileHash.nix32}.nar${NAR_EXTENSIONS[compression]}`,
    fileHash,
    fileSize: file.size,
    body: () => bytes ?? createReadStream(path, { highWaterMark: UPLOAD_CHUNK_BYTES }),
    remove,
  };
}
