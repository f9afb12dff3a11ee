/**
 * A verification worker (a thread, started by verify-pool.ts): for each upload it is given, it
 * counts and, if asked, hashes the file as uploaded (FileSize, FileHash), decompresses it and
 * hashes and checks the NAR inside (NarHash/NarSize, structure, size, ratio and decoder-memory
 * limits: nar-hasher.ts), on the bytes the main thread received, as they arrive. The main thread
 * meanwhile only receives and stores, so on a machine with two cores both work, and the worker's
 * small heap makes the decompressor's buffers cheap to collect.
 *
 * A refusal is sent as soon as it is known; the main thread then fails the upload's body, so the
 * store keeps nothing.
 */
import { parentPort, type MessagePort } from 'node:worker_threads';
import { HttpError } from '../../contracts/http-error.js';
import { FileHasher } from '../../nix/file-hash.js';
import { createNarHasher, NarLimitError, type NarHasher } from '../../nix/nar-hasher.js';
import { NarFormatError } from '../../nix/nar-structure.js';
import { DecompressionMemoryError, type NarCompression } from '../../nix/nar.js';
import { ZstdSkippableFrameError, ZstdWindowError } from '../../nix/zstd-frames.js';
import { GcPacer } from '../../nix/gc-pacer.js';
import type { FromWorker, Refusal, ToWorker } from './verify-protocol.js';

/** The answer to a failed decompression or check: what was refused and why. */
export function refusal(error: unknown, compression: NarCompression): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof NarLimitError) {
    return new HttpError(413, error.message, error.limit === 'nar_size' ? 'too_large' : error.limit);
  }
  if (error instanceof NarFormatError) return new HttpError(400, error.message, error.reason);
  if (error instanceof ZstdSkippableFrameError) return new HttpError(400, error.message, 'padding');
  if (error instanceof ZstdWindowError || error instanceof DecompressionMemoryError) {
    return new HttpError(400, `${error.message} (max_decompression_memory)`, 'decompression_memory');
  }
  return new HttpError(
    400,
    `NAR file does not decompress as ${compression}: ${(error as Error).message}`,
    'corrupt_nar',
  );
}

/** The refusal as it travels to the main thread. */
function refusalMessage(error: unknown, compression: NarCompression): Refusal {
  const { status, message, reason } = refusal(error, compression);
  return { status, message, reason };
}

/**
 * What hashing leaves behind: the decompressor's output buffers are freed as they are hashed
 * (`releaseSpent`); their small JS objects die young.
 */
const pacer = new GcPacer({ minorEveryBytes: 4 * 1024 * 1024, collector: 'thread' });

interface Session {
  compression: NarCompression;
  /** The FileHash's hasher, when it was asked for. */
  file: FileHasher | undefined;
  fileSize: number;
  nar: NarHasher;
  /** Chunks run one after the other; this is the last one's. */
  work: Promise<void>;
  refused: boolean;
}

export function runVerifyWorker(port: MessagePort | null = parentPort): void {
  if (!port) throw new Error('the verification worker runs only as a worker thread');
  const sessions = new Map<number, Session>();
  const post = (message: FromWorker) => port.postMessage(message);

  const refuse = (id: number, session: Session, error: unknown) => {
    if (session.refused) return;
    session.refused = true;
    sessions.delete(id);
    session.nar.destroy();
    post({ type: 'refused', id, refusal: refusalMessage(error, session.compression) });
  };

  /** Runs `step` after the session's earlier work, unless it was refused or ended meanwhile. */
  const then = (id: number, session: Session, step: () => Promise<void>) => {
    session.work = session.work.then(async () => {
      if (session.refused || sessions.get(id) !== session) return;
      try {
        await step();
      } catch (error) {
        refuse(id, session, error);
      }
    });
  };

  port.on('message', (message: ToWorker) => {
    if (message.type === 'start') {
      const { id, compression, limits, hashFile } = message;
      let nar: NarHasher;
      try {
        nar = createNarHasher(compression, limits);
      } catch (error) {
        post({ type: 'refused', id, refusal: refusalMessage(error, compression) });
        return;
      }
      const file = hashFile ? new FileHasher() : undefined;
      sessions.set(id, { compression, file, fileSize: 0, nar, work: Promise.resolve(), refused: false });
      return;
    }
    const session = sessions.get(message.id);
    if (!session) return;
    const { id } = message;
    switch (message.type) {
      case 'chunk': {
        const chunk = Buffer.from(message.bytes, 0, message.length);
        then(id, session, async () => {
          session.file?.update(chunk);
          session.fileSize += chunk.length;
          await session.nar.write(chunk);
          post({ type: 'consumed', id });
          pacer.spent(chunk.length);
        });
        return;
      }
      case 'end':
        then(id, session, async () => {
          const nar = await session.nar.end();
          const fileHash = session.file?.digest().fileHash;
          sessions.delete(id);
          post({
            type: 'digest',
            id,
            digest: {
              ...(fileHash && { fileHash: new Uint8Array(fileHash.digest) }),
              fileSize: session.fileSize,
              narHash: new Uint8Array(nar.narHash.digest),
              narSize: nar.narSize,
            },
          });
        });
        return;
      case 'destroy':
        sessions.delete(id);
        session.nar.destroy();
        return;
    }
  });
}
