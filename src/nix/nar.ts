/**
 * Streaming NAR hashing, compression and decompression. Nothing here holds a NAR in memory: data
 * flows through in chunks, so a multi-gigabyte upload costs a few buffers.
 *
 * zstd comes from Node 24's zlib. xz runs the system `xz` program as a child process, both ways:
 * Node has no xz, and the WASM decompressor on npm (xz-decompress) is correct (multi-block,
 * multi-stream, integrity checks) but serializes every decompression in the process behind one
 * global lock, so one slow xz upload would stall all others. `xz` is native, concurrent and
 * multi-threaded; the `xz` program (Debian: xz-utils) must be on PATH when xz is used.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Duplex, PassThrough, Writable, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { constants as zlibConstants, createZstdCompress, createZstdDecompress } from 'node:zlib';
import { Hash } from './hash.js';
import { ZstdFrameScanner, ZstdFrameSplitter } from './zstd-frames.js';

/** Compressions Sluice can verify and produce (a subset of what Nix reads). */
export const NAR_COMPRESSIONS = ['none', 'zstd', 'xz'] as const;
export type NarCompression = (typeof NAR_COMPRESSIONS)[number];

export class CompressionError extends Error {}

const XZ_DECOMPRESS_MEMLIMIT = '256MiB';

function checkCompression(compression: string): NarCompression {
  if (!(NAR_COMPRESSIONS as readonly string[]).includes(compression)) {
    throw new CompressionError(
      `unsupported compression '${compression}' (supported: ${NAR_COMPRESSIONS.join(', ')})`,
    );
  }
  return compression as NarCompression;
}

/** A Duplex over a filter program's stdin/stdout; a non-zero exit becomes an error naming stderr. */
class ProcessStream extends Duplex {
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private stderr = '';

  constructor(
    command: string,
    args: string[],
    private readonly what: string,
  ) {
    super();
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    // EPIPE when the program quits early (corrupt input): its exit status tells why.
    this.child.stdin.on('error', () => {});
    this.child.stderr.setEncoding('utf8').on('data', (text: string) => {
      if (this.stderr.length < 4096) this.stderr += text;
    });
    this.child.stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) this.child.stdout.pause();
    });
    this.child.on('error', (error: NodeJS.ErrnoException) => {
      this.destroy(
        error.code === 'ENOENT'
          ? new CompressionError(
              `${what} needs the '${command}' program on PATH (Debian: apt-get install xz-utils)`,
            )
          : error,
      );
    });
    this.child.on('close', (code, signal) => {
      if (this.destroyed) return;
      if (code === 0) this.push(null);
      else {
        const detail = this.stderr.trim() || (signal ? `killed by ${signal}` : `exit code ${code}`);
        this.destroy(new CompressionError(`${this.what} failed: ${detail}`));
      }
    });
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.child.stdin.write(chunk)) callback();
    else this.child.stdin.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.child.stdin.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
    callback(error);
  }
}

/**
 * Output chunk of Node's zstd streams. The default (16 KiB) costs a thread-pool round trip per
 * 16 KiB: on incompressible data that is 3× the CPU of 256 KiB chunks.
 */
const ZSTD_CHUNK_BYTES = 256 * 1024;

/** A stream that turns a compressed NAR file back into the NAR. */
export function createDecompressor(compression: string): Duplex {
  switch (checkCompression(compression)) {
    case 'none':
      return new PassThrough();
    case 'zstd':
      // Node's decoder alone drops frames that follow another in the same chunk: split them first.
      return new ZstdFrameSplitter().compose(
        createZstdDecompress({ chunkSize: ZSTD_CHUNK_BYTES }),
      ) as unknown as Duplex;
    case 'xz':
      // xz -9 needs 65 MiB to decompress; a file asking for far more is refused, not obeyed.
      return new ProcessStream(
        'xz',
        ['--decompress', '--stdout', '--quiet', `--memlimit-decompress=${XZ_DECOMPRESS_MEMLIMIT}`],
        'xz decompression',
      );
  }
}

/**
 * A stream that compresses a NAR as `compression`. `level` defaults to the tools' own defaults
 * (zstd 3, xz 6, as `nix copy` uses); xz uses all cores, which makes multi-block files Nix reads.
 */
export function createCompressor(compression: string, options: { level?: number } = {}): Duplex {
  const { level } = options;
  switch (checkCompression(compression)) {
    case 'none':
      return new PassThrough();
    case 'zstd':
      // With a checksum, as the zstd tool writes by default: corruption fails decompression loudly.
      return createZstdCompress({
        chunkSize: ZSTD_CHUNK_BYTES,
        params: {
          [zlibConstants.ZSTD_c_checksumFlag]: 1,
          ...(level === undefined ? {} : { [zlibConstants.ZSTD_c_compressionLevel]: level }),
        },
      });
    case 'xz': {
      if (level !== undefined && !(Number.isInteger(level) && level >= 0 && level <= 9)) {
        throw new CompressionError(`xz level must be 0-9, got ${level}`);
      }
      const args = [
        '--compress',
        '--stdout',
        '--quiet',
        '--threads=0',
        ...(level === undefined ? [] : [`-${level}`]),
      ];
      return new ProcessStream('xz', args, 'xz compression');
    }
  }
}

export interface NarDigest {
  narHash: Hash;
  narSize: number;
}

/**
 * Decompresses a NAR file fed chunk by chunk and hashes the NAR inside, without a stream of its
 * own to pass through: the upload path feeds it the chunks it also writes to storage.
 */
export interface NarHasher {
  /** Resolves once `chunk` is consumed (its buffer may then be reused); rejects if it is corrupt. */
  write(chunk: Buffer): Promise<void>;
  /** The NAR's digest once the file has ended where a NAR may end; rejects otherwise. */
  end(): Promise<NarDigest>;
  /** Stops early, freeing the decompressor. */
  destroy(): void;
}

export function createNarHasher(compression: string): NarHasher {
  switch (checkCompression(compression)) {
    case 'none':
      return new PlainNarHasher();
    case 'zstd': {
      // Node's decoder drops frames that follow another in one write: each write is one frame's bytes.
      const scanner = new ZstdFrameScanner();
      return new StreamNarHasher(
        createZstdDecompress({ chunkSize: ZSTD_CHUNK_BYTES }),
        (chunk, write) => scanner.split(chunk, write),
        () => scanner.finish(),
      );
    }
    case 'xz':
      // The program's stdin may still hold a written chunk after its callback: it gets a copy.
      return new StreamNarHasher(createDecompressor('xz'), (chunk, write) => write(Buffer.from(chunk)));
  }
}

class PlainNarHasher implements NarHasher {
  private readonly hasher = createHash('sha256');
  private size = 0;

  write(chunk: Buffer): Promise<void> {
    this.hasher.update(chunk);
    this.size += chunk.length;
    return Promise.resolve();
  }

  end(): Promise<NarDigest> {
    return Promise.resolve({ narHash: new Hash('sha256', this.hasher.digest()), narSize: this.size });
  }

  destroy(): void {}
}

/** A decompressor whose output is hashed as it comes ('data' events, no queue, nothing piped). */
class StreamNarHasher implements NarHasher {
  private readonly hasher = createHash('sha256');
  private size = 0;
  private failure: Error | undefined;
  /** Settles the promise of the write in progress. */
  private settle: ((error?: Error | null) => void) | undefined;

  constructor(
    private readonly decompressor: Duplex,
    /** Writes `chunk` into the decompressor, in one or more pieces. */
    private readonly feed: (chunk: Buffer, write: (piece: Buffer) => void) => void,
    /** Throws if the input so far cannot be a whole file. */
    private readonly checkEnd: () => void = () => undefined,
  ) {
    decompressor.on('data', (chunk: Buffer) => {
      this.hasher.update(chunk);
      this.size += chunk.length;
    });
    decompressor.on('error', (error: Error) => this.fail(error));
    decompressor.on('close', () => {
      if (!decompressor.readableEnded) this.fail(new Error('the decompressor closed early'));
    });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.settle?.(this.failure);
  }

  write(chunk: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const pieces: Buffer[] = [];
    try {
      this.feed(chunk, (piece) => pieces.push(piece));
    } catch (error) {
      this.failure ??= error as Error;
      return Promise.reject(this.failure);
    }
    if (pieces.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.settle = (error) => {
        this.settle = undefined;
        if (error) reject(error);
        else resolve();
      };
      // Write callbacks run in order: the last one means every piece is consumed.
      for (const [i, piece] of pieces.entries()) {
        this.decompressor.write(piece, i === pieces.length - 1 ? (error) => this.settle?.(error) : undefined);
      }
    });
  }

  async end(): Promise<NarDigest> {
    if (this.failure) throw this.failure;
    this.checkEnd();
    this.decompressor.end();
    await finished(this.decompressor);
    if (this.failure) throw this.failure;
    return { narHash: new Hash('sha256', this.hasher.digest()), narSize: this.size };
  }

  destroy(): void {
    this.decompressor.destroy();
  }
}
