/**
 * The compressed NAR of one store path as an upload body, made while it is sent: the NAR (dumped
 * in-process into a reused buffer) → its size checked against the store's NarSize → compressor.
 * Nothing goes to disk and nothing is hashed here: the upload is named by the NarHash the Nix
 * database already holds, and the server hashes what arrives (the file for its FileHash, the NAR
 * against the name).
 */
import type { Duplex, Readable, Writable } from 'node:stream';
import { BufferPool, written } from '../nix/buffer-pool.js';
import { createCompressor } from '../nix/nar.js';
import type { PushCompression } from './config.js';
import { buffersSpent } from './gc-pacer.js';
import { narChunks } from './nar-dump.js';
import type { PathInfo } from './store.js';

/** Fast zstd: pushing must keep up with the build; ratios barely differ from the default level. */
const ZSTD_LEVEL = 1;
/** The NAR goes to the compressor in chunks of this size (a thread-pool round trip each). */
const CHUNK_BYTES = 256 * 1024;
/** Chunk buffers, kept for the next uploads (one per upload in flight). */
const chunkBuffers = new BufferPool(CHUNK_BYTES, 8);

function compressor(compression: PushCompression): Duplex {
  return createCompressor(compression, compression === 'zstd' ? { level: ZSTD_LEVEL } : {});
}

/** The store path's NAR is not the size the Nix database says: sending it again would not help. */
export class NarSizeError extends Error {
  readonly retryable = false;
}

function sizeError(info: PathInfo, bytes: number): NarSizeError {
  const size = bytes > info.narSize ? `more than ${info.narSize}` : String(bytes);
  return new NarSizeError(`the NAR of ${info.path} is ${size} bytes, but the store says ${info.narSize}`);
}

/**
 * Writes the NAR into `sink` chunk by chunk. zlib is done with a chunk when its write callback
 * runs, so the buffer is reused; xz (a pipe) and none (passed on as is) still hold it then, so
 * they get copies.
 */
async function feed(info: PathInfo, compression: PushCompression, sink: Writable): Promise<void> {
  const buffer = chunkBuffers.take();
  let bytes = 0;
  for await (const chunk of narChunks(info.path, buffer)) {
    bytes += chunk.length;
    // Fails the body before its end reaches the server, which then stores nothing.
    if (bytes > info.narSize) throw sizeError(info, bytes);
    await written(sink, compression === 'zstd' ? chunk : Buffer.from(chunk));
    // About as many bytes of compressed output (or copies) that will be garbage once sent.
    buffersSpent(chunk.length);
  }
  if (bytes !== info.narSize) throw sizeError(info, bytes);
  // Only after a clean end: after an error the compressor may still be reading the buffer.
  chunkBuffers.give([buffer]);
}

/** A fresh stream of the compressed NAR (one per attempt); it errors if the NAR is not as the store says. */
export function compressedNar(info: PathInfo, compression: PushCompression): Readable {
  const out = compressor(compression);
  // zlib allocates an output buffer of the chunk size with each stream, however small the NAR.
  buffersSpent(CHUNK_BYTES);
  feed(info, compression, out).then(
    () => out.end(),
    (error: unknown) => out.destroy(error as Error),
  );
  return out;
}
