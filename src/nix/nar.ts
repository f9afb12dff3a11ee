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
import { Duplex, PassThrough, type Readable, type Writable } from 'node:stream';
import {
  constants as zlibConstants,
  createZstdCompress,
  createZstdDecompress,
  zstdCompressSync,
} from 'node:zlib';
import type { Hash } from './hash.js';
import { ZstdFrameSplitter } from './zstd-frames.js';

/** Compressions Sluice can verify and produce (a subset of what Nix reads). */
export const NAR_COMPRESSIONS = ['none', 'zstd', 'xz'] as const;
export type NarCompression = (typeof NAR_COMPRESSIONS)[number];

export class CompressionError extends Error {}

/** A decompressor needs more memory than it is allowed (xz's dictionary, zstd's window). */
export class DecompressionMemoryError extends CompressionError {}

/** Without a stated limit: xz -9 needs 65 MiB to decompress; a file asking for far more is refused. */
const XZ_DECOMPRESS_MEMLIMIT = 256 * 1024 * 1024;

export interface DecompressorOptions {
  /** Memory the decompressor may use: xz's `--memlimit-decompress`, zstd's largest window. */
  maxMemory?: number;
}

const mib = (bytes: number) => `${Math.round((bytes / 2 ** 20) * 10) / 10} MiB`;

export function checkCompression(compression: string): NarCompression {
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
    /** Turns the program's stderr into a more specific error, where it recognises one. */
    private readonly explain: (stderr: string) => Error | undefined = () => undefined,
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
        this.destroy(this.explain(this.stderr) ?? new CompressionError(`${this.what} failed: ${detail}`));
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

/** Node's zstd decoder, its window bounded by `maxMemory` (default: zstd's own limit, 128 MiB). */
export function createZstdDecoder(maxMemory?: number): Duplex {
  const windowLogMax =
    maxMemory === undefined ? undefined : Math.min(31, Math.max(10, Math.floor(Math.log2(maxMemory))));
  return createZstdDecompress({
    chunkSize: ZSTD_CHUNK_BYTES,
    ...(windowLogMax === undefined ? {} : { params: { [zlibConstants.ZSTD_d_windowLogMax]: windowLogMax } }),
  });
}

/** The `xz` program decompressing within `maxMemory`, on one thread (one dictionary per upload). */
function createXzDecoder(maxMemory = XZ_DECOMPRESS_MEMLIMIT): Duplex {
  return new ProcessStream(
    'xz',
    ['--decompress', '--stdout', '--quiet', '--threads=1', `--memlimit-decompress=${maxMemory}`],
    'xz decompression',
    (stderr) =>
      /memory usage limit reached/i.test(stderr)
        ? new DecompressionMemoryError(
            `xz data needs more memory to decompress than the limit of ${mib(maxMemory)} (its dictionary is larger)`,
          )
        : undefined,
  );
}

/** A stream that turns a compressed NAR file back into the NAR. */
export function createDecompressor(compression: string, options: DecompressorOptions = {}): Duplex {
  switch (checkCompression(compression)) {
    case 'none':
      return new PassThrough();
    case 'zstd':
      // Node's decoder alone drops frames that follow another in the same chunk: split them first.
      return new ZstdFrameSplitter().compose(createZstdDecoder(options.maxMemory)) as unknown as Duplex;
    case 'xz':
      return createXzDecoder(options.maxMemory);
  }
}

/** With a checksum, as the zstd tool writes by default: corruption fails decompression loudly. */
function zstdParams(level: number | undefined): Record<number, number> {
  return {
    [zlibConstants.ZSTD_c_checksumFlag]: 1,
    ...(level === undefined ? {} : { [zlibConstants.ZSTD_c_compressionLevel]: level }),
  };
}

/**
 * A small NAR compressed with zstd in one call, as `createCompressor` would stream it: no stream,
 * and none of the output buffer of its chunk size that a stream allocates however small the NAR.
 */
export function zstdCompressWhole(nar: Buffer, options: { level?: number } = {}): Buffer {
  // Room for all of the output in one buffer (zstd adds at most ~0.4% to incompressible data): in
  // 16 KiB chunks, as zlib writes by default, the output would be allocated twice (chunks, concat).
  const chunkSize = nar.length + (nar.length >> 7) + 1024;
  return zstdCompressSync(nar, { params: zstdParams(options.level), chunkSize });
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
      return createZstdCompress({ chunkSize: ZSTD_CHUNK_BYTES, params: zstdParams(level) });
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
