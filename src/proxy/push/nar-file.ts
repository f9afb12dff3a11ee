/**
 * The compressed NAR of one store path as an upload body, made while it is sent: the NAR (dumped
 * in-process into a reused buffer) → its size checked against the store's NarSize → compressor →
 * copied onto reused buffers. Nothing goes to disk and nothing is hashed here: the upload is named
 * by the NarHash the Nix database already holds, and the server hashes what arrives (the file for
 * its FileHash, the NAR against the name).
 */
import type { Duplex, Writable } from 'node:stream';
import { BufferPool, releaseMemory, releaseSpent, written } from '../../nix/buffer-pool.js';
import { GcPacer } from '../../nix/gc-pacer.js';
import { createCompressor, zstdCompressWhole } from '../../nix/nar.js';
import type { PushCompression } from '../../contracts/daemon-config.js';
import { narChunks } from './nar-dump.js';
import type { PathInfo } from './local-store.js';

/** Fast zstd: pushing must keep up with the build; ratios barely differ from the default level. */
const ZSTD_LEVEL = 1;
/** The NAR goes to the compressor, and its output to the socket, in chunks of this size. */
const CHUNK_BYTES = 256 * 1024;
/** Compressed chunks made ahead of the socket, per upload; then the compressor waits for input. */
const CHUNKS_AHEAD = 1;
/** NAR chunks (one per upload in flight) and compressed chunks (a few per upload), kept for reuse. */
const chunkBuffers = new BufferPool(CHUNK_BYTES, 24, 10_000);
/**
 * What is left after `releaseSpent`: each stream's last, partly filled output buffer and the small
 * JS objects of the rest, collected young every 2 MiB. Full collections every 32 MiB (~15 ms each,
 * ~0.5 s of CPU on a 1 GiB push) were needed to stay within 100 MB before the release.
 */
const pacer = new GcPacer({ minorEveryBytes: 2 * 1024 * 1024, collector: 'exposed' });

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
 * Writes the NAR into `sink` chunk by chunk, each once `room` allows. zlib is done with a chunk
 * when its write callback runs, so the buffer is reused; xz (a pipe) and none (passed on as is)
 * still hold it then, so they get copies.
 */
async function feed(
  info: PathInfo,
  compression: PushCompression,
  sink: Writable,
  room: () => Promise<void>,
): Promise<void> {
  const buffer = chunkBuffers.take();
  let bytes = 0;
  for await (const chunk of narChunks(info.path, buffer)) {
    bytes += chunk.length;
    // Fails the body before its end reaches the server, which then stores nothing.
    if (bytes > info.narSize) throw sizeError(info, bytes);
    await room();
    await written(sink, compression === 'zstd' ? chunk : Buffer.from(chunk));
  }
  if (bytes !== info.narSize) throw sizeError(info, bytes);
  // Only after a clean end: after an error the compressor may still be reading the buffer.
  chunkBuffers.give([buffer]);
}

/**
 * The compressed NAR, freshly made for each attempt, as chunks on reused buffers: a chunk may be
 * reused once the next one is asked for, so the consumer must be done with it by then (a socket:
 * once its write callback ran). Fails if the NAR is not as the store says.
 *
 * Why the copy: zlib hands out its output in fresh 256 KiB buffers. Sent as they were, they waited
 * in the socket's queue long enough to reach V8's old generation, where only full collections free
 * them. Copied out as soon as they are made, each of zlib's buffers is freed once filled
 * (`releaseSpent`).
 */
export async function* compressedNar(info: PathInfo, compression: PushCompression): AsyncGenerator<Buffer> {
  const out = compressor(compression);
  // zlib allocates an output buffer of the chunk size with each stream, however small the NAR.
  pacer.spent(CHUNK_BYTES);
  /** Full chunks, and last the partial one, each with the length of its bytes. */
  const ready: { buffer: Buffer; length: number }[] = [];
  let filling: Buffer | undefined;
  let lastOutput: Buffer | undefined;
  let used = 0;
  let ended = false;
  let failure: Error | undefined;
  // The generator waits for a chunk, the feeder for room: each is woken by what it waits for.
  let chunkArrived: (() => void) | undefined;
  let roomMade: (() => void) | undefined;
  const wake = (waiter: (() => void) | undefined): undefined => void waiter?.();
  const room = (): Promise<void> =>
    ready.length < CHUNKS_AHEAD || failure !== undefined
      ? Promise.resolve()
      : new Promise((resolve) => (roomMade = resolve));

  out.on('data', (chunk: Buffer) => {
    for (let offset = 0; offset < chunk.length;) {
      filling ??= chunkBuffers.take();
      const copied = chunk.copy(filling, used, offset);
      used += copied;
      offset += copied;
      if (used === CHUNK_BYTES) {
        ready.push({ buffer: filling, length: used });
        filling = undefined;
        used = 0;
      }
    }
    // zlib's buffer for this output is garbage now (its stream's, once full).
    releaseSpent(chunk);
    lastOutput = chunk;
    pacer.spent(chunk.length);
    chunkArrived = wake(chunkArrived);
  });
  out.on('end', () => {
    // The stream's last buffer, partly filled: the stream writes no more.
    if (lastOutput) releaseMemory(lastOutput);
    if (filling) ready.push({ buffer: filling, length: used });
    ended = true;
    chunkArrived = wake(chunkArrived);
  });
  out.on('error', (error) => {
    failure ??= error;
    chunkArrived = wake(chunkArrived);
  });
  feed(info, compression, out, room).then(
    () => out.end(),
    (error: unknown) => out.destroy(error as Error),
  );

  try {
    for (;;) {
      const chunk = ready.shift();
      if (chunk) {
        roomMade = wake(roomMade);
        yield chunk.length === CHUNK_BYTES ? chunk.buffer : chunk.buffer.subarray(0, chunk.length);
        chunkBuffers.give([chunk.buffer]);
      } else if (failure) {
        throw failure;
      } else if (ended) {
        return;
      } else {
        await new Promise<void>((resolve) => (chunkArrived = resolve));
      }
    }
  } finally {
    // Abandoned (the request failed) or failed: the feeder must not wait for room that never comes.
    failure ??= new Error('the upload body was abandoned');
    roomMade = wake(roomMade);
    if (!ended) out.destroy();
  }
}

/** The NarSize up to which `smallNarFile` takes a path: its NAR fits one chunk buffer. */
export const SMALL_NAR_BYTES = CHUNK_BYTES - 1;

/**
 * A small path's compressed NAR, whole (for the path batch, whose header line states the file's
 * size before its bytes): the NAR read into a reused chunk buffer, compressed in one call.
 */
export async function smallNarFile(info: PathInfo, compression: 'none' | 'zstd'): Promise<Buffer> {
  if (info.narSize > SMALL_NAR_BYTES) throw new Error(`${info.path} is too large for a path batch`);
  const buffer = chunkBuffers.take();
  try {
    // Read into `narSize + 1` bytes: a NAR that fills them is larger than the store says.
    let nar: Buffer = Buffer.alloc(0);
    for await (const chunk of narChunks(info.path, buffer.subarray(0, info.narSize + 1))) {
      nar = chunk;
      break;
    }
    if (nar.length !== info.narSize) throw sizeError(info, nar.length);
    const file = compression === 'none' ? Buffer.from(nar) : zstdCompressWhole(nar, { level: ZSTD_LEVEL });
    // The batch frees it once sent (small ones, from Node's pool, at a young collection).
    pacer.spent(file.length);
    return file;
  } finally {
    chunkBuffers.give([buffer]);
  }
}
