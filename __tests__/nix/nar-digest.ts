/**
 * Stream digests of NAR files for the tests: a NAR's NarHash/NarSize through `createDecompressor`,
 * and the file's FileHash/FileSize beside them. The server computes the same in one pass as uploads
 * arrive (createNarHasher, src/server/cache/nar-verifier.ts); these check files Nix and we wrote.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FileHasher, type FileDigest } from '../../src/nix/file-hash.js';
import { createDecompressor, type NarDigest } from '../../src/nix/nar.js';

/** A sink that hashes what it is given. */
function hashingSink(hasher: FileHasher): Writable {
  return new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      hasher.update(chunk);
      done();
    },
  });
}

/** createDecompressor, but an unsupported compression also closes `source` rather than leak it. */
function decompressorFor(source: Readable | AsyncIterable<Uint8Array>, compression: string) {
  try {
    return createDecompressor(compression);
  } catch (error) {
    if ('destroy' in source && typeof source.destroy === 'function') source.destroy();
    throw error;
  }
}

/** Decompresses and hashes a (compressed) NAR stream: its NarHash and NarSize. */
export async function hashNar(
  source: Readable | AsyncIterable<Uint8Array>,
  compression: string,
): Promise<NarDigest> {
  const nar = new FileHasher();
  await pipeline(source, decompressorFor(source, compression), hashingSink(nar));
  const { fileHash, fileSize } = nar.digest();
  return { narHash: fileHash, narSize: fileSize };
}

/** Streams a compressed NAR file into `sink` while computing the file's and the NAR's digests. */
export async function digestNarFile(
  source: Readable | AsyncIterable<Uint8Array>,
  compression: string,
  sink: Writable,
): Promise<NarDigest & FileDigest> {
  const file = new FileHasher();
  const copies: Buffer[] = [];
  await pipeline(
    source,
    async function* (input: AsyncIterable<Uint8Array>) {
      for await (const chunk of input) {
        file.update(chunk);
        copies.push(Buffer.from(chunk));
        yield chunk;
      }
    },
    sink,
  );
  return { ...file.digest(), ...(await hashNar(Readable.from(copies), compression)) };
}
