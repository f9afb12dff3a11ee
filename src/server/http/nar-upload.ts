/**
 * The verifying stream every NAR upload goes through on its way to the BlobStore. It passes the
 * file's bytes on, and meanwhile hashes them (FileHash/FileSize) and decompresses and hashes the
 * NAR inside (NarHash/NarSize). It ends in an error, so the store commits nothing, when the file
 * is larger than allowed, does not decompress, or does not hash to the name it was uploaded as:
 * the file's hash (Nix's `PUT /nar/<filehash>`) or the NAR's (`PUT /_api/v1/nar/<narhash>`).
 */
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HttpError } from '../../http/errors.js';
import type { Hash } from '../../nix/hash.js';
import { createDecompressor, HashingStream, type NarCompression } from '../../nix/nar.js';

/** The hash an upload's name states: of the file as uploaded, or of the NAR inside it. */
export type NarUploadName = { fileHash: Hash } | { narHash: Hash };

export type ExpectedNarFile = NarUploadName & {
  compression: NarCompression;
  maxSize: number;
};

export interface NarFileDigest {
  fileHash: Hash;
  fileSize: number;
  narHash: Hash;
  narSize: number;
}

export interface VerifiedNarStream {
  /** What to store: the uploaded bytes, erroring at the end unless every check passed. */
  body: Readable;
  /** The digest, known once `body` has ended without error. */
  digest(): NarFileDigest;
}

/** The error for a file or NAR that does not hash to its name, or undefined if it does. */
function nameMismatch(
  expected: ExpectedNarFile,
  file: HashingStream,
  nar: HashingStream,
): HttpError | undefined {
  const [what, actual, wanted, reason] =
    'fileHash' in expected
      ? ['NAR file', file.hash(), expected.fileHash, 'file_hash_mismatch']
      : ['NAR', nar.hash(), expected.narHash, 'nar_hash_mismatch'];
  if (actual.equals(wanted)) return undefined;
  return new HttpError(
    400,
    `${what} hashes to ${actual.toString()}, not to ${wanted.toString()} as its name says`,
    reason,
  );
}

export function verifyNarUpload(source: Readable, expected: ExpectedNarFile): VerifiedNarStream {
  const file = new HashingStream();
  const decompressor = createDecompressor(expected.compression);
  const nar = new HashingStream();
  const narDone = pipeline(decompressor, nar, new Writable({ write: (_chunk, _encoding, done) => done() }));

  const corrupt = (error: unknown) =>
    new HttpError(
      400,
      `NAR file does not decompress as ${expected.compression}: ${(error as Error).message}`,
      'corrupt_nar',
    );

  const gate = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (file.size > expected.maxSize) {
        callback(
          new HttpError(413, `NAR file is larger than the limit of ${expected.maxSize} bytes`, 'too_large'),
        );
        return;
      }
      if (decompressor.write(chunk)) callback(null, chunk);
      else decompressor.once('drain', () => callback(null, chunk));
    },
    flush(callback) {
      decompressor.end();
      narDone.then(
        () => callback(nameMismatch(expected, file, nar)),
        (error) => callback(corrupt(error)),
      );
    },
    destroy(error, callback) {
      decompressor.destroy();
      callback(error);
    },
  });
  // A decompression error mid-stream may leave a write waiting for 'drain' forever: fail the gate now.
  narDone.catch((error: unknown) => gate.destroy(corrupt(error)));
  pipeline(source, file, gate).catch((error: unknown) => gate.destroy(error as Error));

  return {
    body: gate,
    digest: () => ({ fileHash: file.hash(), fileSize: file.size, narHash: nar.hash(), narSize: nar.size }),
  };
}
