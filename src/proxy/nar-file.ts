/**
 * The compressed NAR of one store path as an upload body, made while it is sent: the NAR (dumped
 * in-process) → its size checked against the store's NarSize → compressor. Nothing goes to disk and
 * nothing is hashed here: the upload is named by the NarHash the Nix database already holds, and
 * the server hashes what arrives (the file for its FileHash, the NAR against the name).
 */
import { pipeline, Transform, type Duplex, type Readable, type TransformCallback } from 'node:stream';
import { createCompressor } from '../nix/nar.js';
import type { PushCompression } from './config.js';
import { dumpNar } from './nar-dump.js';
import type { PathInfo } from './store.js';

/** Fast zstd: pushing must keep up with the build; ratios barely differ from the default level. */
const ZSTD_LEVEL = 1;

function compressor(compression: PushCompression): Duplex {
  return createCompressor(compression, compression === 'zstd' ? { level: ZSTD_LEVEL } : {});
}

/** The store path's NAR is not the size the Nix database says: sending it again would not help. */
export class NarSizeError extends Error {
  readonly retryable = false;
}

/** Passes the NAR on, failing the stream (before its end reaches the server) if its size is wrong. */
class NarSizeCheck extends Transform {
  private bytes = 0;

  constructor(private readonly info: PathInfo) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.info.narSize) done(this.error());
    else done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    done(this.bytes === this.info.narSize ? null : this.error());
  }

  private error(): NarSizeError {
    const size = this.bytes > this.info.narSize ? `more than ${this.info.narSize}` : String(this.bytes);
    return new NarSizeError(
      `the NAR of ${this.info.path} is ${size} bytes, but the store says ${this.info.narSize}`,
    );
  }
}

/** A fresh stream of the compressed NAR (one per attempt); it errors if the NAR is not as the store says. */
export function compressedNar(info: PathInfo, compression: PushCompression): Readable {
  return pipeline(dumpNar(info.path), new NarSizeCheck(info), compressor(compression), () => {
    // Errors reach whoever reads the last stream: pipeline destroys it with the error.
  });
}
