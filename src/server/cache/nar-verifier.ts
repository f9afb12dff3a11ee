/**
 * The verifying pass every NAR upload goes through on its way to the BlobStore. It hands the
 * file's bytes on, and meanwhile hashes them (FileHash/FileSize) and decompresses and hashes the
 * NAR inside (NarHash/NarSize). It ends in an error, so the store commits nothing, when the file
 * is larger than allowed, does not decompress, or does not hash to the name it was uploaded as:
 * the file's hash (Nix's `PUT /nar/<filehash>`) or the NAR's (`PUT /_api/v1/nar/<narhash>`).
 * Within the limits (NarHasher's): exactly one NAR, no padding, bounded size, ratio and decoder
 * memory, so that a few kilobytes cannot buy minutes of CPU, gigabytes of memory, or a file
 * larger than the NAR it holds.
 *
 * One loop does all of it, with no stream per step: the request's chunks are hashed, then copied
 * into one of two reused buffers, and each full buffer goes to the decompressor and to storage at
 * once. Few large writes cost fewer thread-pool round trips than a write per received chunk, and
 * reused buffers cost no allocations (page faults, garbage collections), which weigh more here.
 */
import { HttpError } from '../../contracts/http-error.js';
import { BufferPool } from '../../nix/buffer-pool.js';
import { FileHasher } from '../../nix/file-hash.js';
import type { Hash } from '../../nix/hash.js';
import { createNarHasher, NarLimitError, type NarLimits } from '../../nix/nar-hasher.js';
import { NarFormatError } from '../../nix/nar-structure.js';
import { DecompressionMemoryError, type NarCompression, type NarDigest } from '../../nix/nar.js';
import { ZstdSkippableFrameError, ZstdWindowError } from '../../nix/zstd-frames.js';

/** The hash an upload's name states: of the file as uploaded, or of the NAR inside it. */
export type NarUploadName = { fileHash: Hash } | { narHash: Hash };

export type ExpectedNarFile = NarUploadName & {
  compression: NarCompression;
  /** `maxNarSize` also bounds the file as uploaded. */
  limits: NarLimits;
};

export interface NarFileDigest {
  fileHash: Hash;
  fileSize: number;
  narHash: Hash;
  narSize: number;
}

export interface VerifiedNarUpload {
  /**
   * What to store: the uploaded bytes, in chunks whose buffers are reused once the next chunk is
   * asked for, and an error at the end unless every check passed.
   */
  body: AsyncIterable<Buffer>;
  /** The digest, known once `body` has ended without error. */
  digest(): NarFileDigest;
}

/** The two buffers an upload's bytes are gathered in, of 256 KiB (1 MiB: same CPU, 7 MB more RSS). */
const stageBuffers = new BufferPool(256 * 1024, 16);

/** The error for a file or NAR that does not hash to its name, or undefined if it does. */
function nameMismatch(expected: ExpectedNarFile, digest: NarFileDigest): HttpError | undefined {
  const [what, actual, wanted, reason] =
    'fileHash' in expected
      ? ['NAR file', digest.fileHash, expected.fileHash, 'file_hash_mismatch']
      : ['NAR', digest.narHash, expected.narHash, 'nar_hash_mismatch'];
  if (actual.equals(wanted)) return undefined;
  return new HttpError(
    400,
    `${what} hashes to ${actual.toString()}, not to ${wanted.toString()} as its name says`,
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

/** The answer to a failed decompression or check: what was refused and why. */
function refusal(error: unknown, compression: NarCompression): HttpError {
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

export function verifyNarUpload(source: AsyncIterable<Buffer>, expected: ExpectedNarFile): VerifiedNarUpload {
  let digest: NarFileDigest | undefined;
  const { limits, compression } = expected;
  const corrupt = (error: unknown) => refusal(error, compression);

  async function* body(): AsyncGenerator<Buffer> {
    const file = new FileHasher();
    const nar = createNarHasher(compression, limits);
    const stages = [stageBuffers.take()];
    let stage = stages[0]!;
    let filled = 0;
    // The decompression of the last full stage, which runs while the next one fills.
    let decompressing: Promise<void> | undefined;
    const decompressed = async () => {
      try {
        await decompressing;
      } catch (error) {
        throw corrupt(error);
      }
    };
    try {
      for await (const chunk of source) {
        file.update(chunk);
        if (file.fileSize > limits.maxNarSize) {
          throw new HttpError(
            413,
            `NAR file is larger than the limit of ${limits.maxNarSize} bytes`,
            'too_large',
          );
        }
        for (let offset = 0; offset < chunk.length;) {
          const copied = chunk.copy(stage, filled, offset);
          offset += copied;
          filled += copied;
          if (filled < stage.length) continue;
          // The other stage must be done decompressing before it is filled again.
          await decompressed();
          decompressing = nar.write(stage);
          // Its failure is taken up at the next await; until then it must not count as unhandled.
          decompressing.catch(() => undefined);
          // Resumed once the store has written the stage.
          yield stage;
          if (stages.length < 2) stages.push(stageBuffers.take());
          stage = stages[stage === stages[0] ? 1 : 0]!;
          filled = 0;
        }
      }
      await decompressed();
      if (filled > 0) {
        decompressing = nar.write(stage.subarray(0, filled));
        decompressing.catch(() => undefined);
        yield stage.subarray(0, filled);
        await decompressed();
      }
      let narDigest: NarDigest;
      try {
        narDigest = await nar.end();
      } catch (error) {
        throw corrupt(error);
      }
      const { fileSize } = file;
      if (compression !== 'none' && fileSize > narDigest.narSize + maxFileOverhead(narDigest.narSize)) {
        throw new HttpError(
          400,
          `NAR file of ${fileSize} bytes holds a NAR of ${narDigest.narSize} bytes: more than ${compression} adds, ` +
            'and padding is not accepted',
          'padding',
        );
      }
      const result = { ...file.digest(), ...narDigest };
      const mismatch = nameMismatch(expected, result);
      if (mismatch) throw mismatch;
      digest = result;
    } finally {
      nar.destroy();
      // A destroyed decompressor may still be reading its last stage: harmless, it only reads.
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
