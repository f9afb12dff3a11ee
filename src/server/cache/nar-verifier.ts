/**
 * The verifying pass every NAR upload goes through on its way to the BlobStore. It hands the
 * file's bytes on, and meanwhile has them counted and, where wanted, hashed (FileSize, FileHash)
 * and the NAR inside decompressed and hashed (NarHash/NarSize) by a verification worker
 * (verify-pool.ts). It ends in an error, so the store commits nothing, when the file is larger
 * than allowed, does not decompress, or does not hash to the name it was uploaded as: the file's
 * hash (Nix's `PUT /nar/<filehash>`) or the NAR's (`PUT /_api/v1/nar/<narhash>`). Within the limits
 * (NarHasher's, checked on the worker): exactly one NAR, no padding, bounded size, ratio and
 * decoder memory, so that a few kilobytes cannot buy minutes of CPU, gigabytes of memory, or a
 * file larger than the NAR it holds.
 *
 * One loop on the main thread: the request's chunks are copied into one of two reused shared
 * buffers, and each full buffer goes to the worker and to storage at once. The worker reads it
 * where it is (no copy), so hashing and decompressing run on another core while this thread
 * receives and writes; few large writes cost fewer thread-pool round trips than a write per
 * received chunk, and reused buffers cost no allocations (page faults, garbage collections).
 */
import { HttpError } from '../../contracts/http-error.js';
import { BufferPool, copyInto } from '../../nix/buffer-pool.js';
import type { Hash } from '../../nix/hash.js';
import type { NarLimits } from '../../nix/nar-hasher.js';
import type { NarCompression } from '../../nix/nar.js';
import { GcPacer } from '../../nix/gc-pacer.js';
import type { NarFileDigest, VerifyPool } from './verify-pool.js';

/**
 * The hash an upload's name states: of the file as uploaded, or of the NAR inside it. A file named
 * by its NarHash is hashed as a file too only if `hashFile` (its uploader's narinfo states a
 * FileHash).
 */
export type NarUploadName = { fileHash: Hash } | { narHash: Hash; hashFile: boolean };

export type ExpectedNarFile = NarUploadName & {
  compression: NarCompression;
  /** `maxNarSize` also bounds the file as uploaded. */
  limits: NarLimits;
};

export type { NarFileDigest } from './verify-pool.js';

export interface VerifiedNarUpload {
  /**
   * What to store: the uploaded bytes, in chunks whose buffers are reused once the next chunk is
   * asked for, and an error at the end unless every check passed.
   */
  body: AsyncIterable<Buffer>;
  /** The digest, known once `body` has ended without error. */
  digest(): NarFileDigest;
}

/**
 * The two buffers an upload's bytes are gathered in, shared with the verification workers. 1 MiB:
 * with the checks on a worker, a quarter of the messages, writes and decompressor calls of 256 KiB
 * stages cost the server 12% less CPU on the 1 GiB push (6.6 -> 5.8 s), for no more memory.
 */
const stageBuffers = new BufferPool(1024 * 1024, 16, undefined, true);

/**
 * The request's chunks, each a fresh buffer from the socket: a NAR upload's are freed once copied
 * (`releasedAfterUse`), a path batch's die young.
 */
const receivePacer = new GcPacer({ minorEveryBytes: 8 * 1024 * 1024, collector: 'thread' });

/** The error for a file or NAR that does not hash to its name, or undefined if it does. */
function nameMismatch(expected: ExpectedNarFile, digest: NarFileDigest): HttpError | undefined {
  const [what, actual, wanted, reason] =
    'fileHash' in expected
      ? ['NAR file', digest.fileHash, expected.fileHash, 'file_hash_mismatch']
      : ['NAR', digest.narHash, expected.narHash, 'nar_hash_mismatch'];
  if (actual?.equals(wanted)) return undefined;
  return new HttpError(
    400,
    `${what} hashes to ${actual?.toString()}, not to ${wanted.toString()} as its name says`,
    reason,
  );
}

/**
 * What compressors add to incompressible data, with room to spare: zstd ~700 bytes on 30 MB,
 * xz ~2.5 KB (multi-threaded, level 0) on 30 MB, and ~60 bytes on an empty file. More is padding.
 */
export function maxFileOverhead(narSize: number): number {
  return Math.floor(narSize / 1024) + 4096;
}

export function verifyNarUpload(
  source: AsyncIterable<Buffer>,
  expected: ExpectedNarFile,
  verifiers: VerifyPool,
): VerifiedNarUpload {
  let digest: NarFileDigest | undefined;
  const { limits, compression } = expected;

  async function* body(): AsyncGenerator<Buffer> {
    const check = verifiers.session(compression, limits, 'fileHash' in expected || expected.hashFile);
    const stages = [stageBuffers.take()];
    let stage = stages[0]!;
    let filled = 0;
    let fileSize = 0;
    // The worker's check of the last full stage, which runs while the next one fills; it rejects
    // with the refusal (an HttpError).
    let checking: Promise<void> | undefined;
    const send = (bytes: Buffer) => {
      checking = check.write(bytes);
      // Its failure is taken up at the next await; until then it must not count as unhandled.
      checking.catch(() => undefined);
    };
    try {
      for await (const chunk of source) {
        fileSize += chunk.length;
        receivePacer.spent(chunk.length);
        if (fileSize > limits.maxNarSize) {
          throw new HttpError(
            413,
            `NAR file is larger than the limit of ${limits.maxNarSize} bytes`,
            'too_large',
          );
        }
        for (let offset = 0; offset < chunk.length;) {
          const copied = copyInto(stage, filled, offset === 0 ? chunk : chunk.subarray(offset));
          offset += copied;
          filled += copied;
          if (filled < stage.length) continue;
          // The other stage must be checked before it is filled again.
          await checking;
          send(stage);
          // Resumed once the store has written the stage.
          yield stage;
          if (stages.length < 2) stages.push(stageBuffers.take());
          stage = stages[stage === stages[0] ? 1 : 0]!;
          filled = 0;
        }
      }
      await checking;
      if (filled > 0) {
        send(stage.subarray(0, filled));
        yield stage.subarray(0, filled);
        await checking;
      }
      const result = await check.end();
      if (compression !== 'none' && fileSize > result.narSize + maxFileOverhead(result.narSize)) {
        throw new HttpError(
          400,
          `NAR file of ${fileSize} bytes holds a NAR of ${result.narSize} bytes: more than ${compression} adds, ` +
            'and padding is not accepted',
          'padding',
        );
      }
      const mismatch = nameMismatch(expected, result);
      if (mismatch) throw mismatch;
      digest = result;
    } finally {
      check.destroy();
      // A stopped check may still be reading its last stage: harmless, it only reads, and its
      // session is gone.
      stageBuffers.give(stages);
    }
  }

  return {
    body: body(),
    digest: () => {
      if (!digest) throw new Error('the upload digest is only known once its body has ended');
      return digest;
    },
  };
}
