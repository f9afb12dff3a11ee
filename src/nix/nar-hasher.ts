/**
 * Decompresses a NAR file fed chunk by chunk and hashes the NAR inside, without a stream of its
 * own to pass through: the upload path feeds it the chunks it also writes to storage.
 *
 * Given limits (as the server's uploads are), it also refuses what is not worth inflating: bytes
 * that are not exactly one NAR, a NAR past the size limit (as soon as the NAR declares a file that
 * would pass it), output out of all proportion to the input, skippable zstd frames, and frames or
 * dictionaries that need more decoder memory than allowed. The decompressor stops at once.
 */
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import { releaseSpent } from './buffer-pool.js';
import { Hash } from './hash.js';
import { checkCompression, createDecompressor, createZstdDecoder, type NarDigest } from './nar.js';
import { NarStructureChecker } from './nar-structure.js';
import { ZstdFrameScanner } from './zstd-frames.js';

export interface NarHasher {
  /** Resolves once `chunk` is consumed (its buffer may then be reused); rejects if it is corrupt. */
  write(chunk: Buffer): Promise<void>;
  /** The NAR's digest once the file has ended where a NAR may end; rejects otherwise. */
  end(): Promise<NarDigest>;
  /** Stops early, freeing the decompressor. */
  destroy(): void;
}

export interface NarLimits {
  /** The largest NarSize accepted. */
  maxNarSize: number;
  /** NAR bytes per compressed byte fed so far, once the NAR is past RATIO_FLOOR_BYTES; 0: no limit. */
  maxRatio: number;
  /** Decoder memory: xz's `--memlimit-decompress`, the largest zstd window. */
  maxDecompressionMemory: number;
}

/** Below this, any ratio is fine: inflating 64 MiB costs a fraction of a second. */
export const RATIO_FLOOR_BYTES = 64 * 1024 * 1024;

export class NarLimitError extends Error {
  constructor(
    message: string,
    readonly limit: 'nar_size' | 'compression_ratio',
  ) {
    super(message);
  }
}

export function createNarHasher(compression: string, limits?: NarLimits): NarHasher {
  const output = new NarOutput(limits);
  switch (checkCompression(compression)) {
    case 'none':
      return new PlainNarHasher(output);
    case 'zstd': {
      // Node's decoder drops frames that follow another in one write: each write is one frame's bytes.
      const scanner = new ZstdFrameScanner(
        limits ? { refuseSkippable: true, maxWindowBytes: limits.maxDecompressionMemory } : {},
      );
      return new StreamNarHasher(
        output,
        createZstdDecoder(limits?.maxDecompressionMemory),
        (chunk, write) => scanner.split(chunk, write),
        () => scanner.finish(),
      );
    }
    case 'xz':
      // The program's stdin may still hold a written chunk after its callback: it gets a copy.
      return new StreamNarHasher(
        output,
        createDecompressor('xz', { maxMemory: limits?.maxDecompressionMemory }),
        (chunk, write) => write(Buffer.from(chunk)),
      );
  }
}

/** Hashes and counts the NAR as it comes out of the decompressor, and checks it against the limits. */
class NarOutput {
  private readonly hasher = createHash('sha256');
  private readonly structure: NarStructureChecker | undefined;
  size = 0;
  /** Compressed bytes given to the decompressor so far. */
  fed = 0;

  constructor(private readonly limits?: NarLimits) {
    this.structure = limits ? new NarStructureChecker() : undefined;
  }

  /** Takes the next NAR bytes; throws if they break the format or a limit. */
  take(chunk: Buffer): void {
    this.structure?.update(chunk);
    this.hasher.update(chunk);
    this.size += chunk.length;
    const limits = this.limits;
    if (!limits || !this.structure) return;
    if (this.structure.declaredSize > limits.maxNarSize) {
      throw new NarLimitError(
        `the NAR is larger than the limit of ${limits.maxNarSize} bytes` +
          (this.structure.declaredSize > this.size
            ? ' (it declares a file that takes it past the limit)'
            : ''),
        'nar_size',
      );
    }
    if (limits.maxRatio > 0 && this.size > RATIO_FLOOR_BYTES && this.size > limits.maxRatio * this.fed) {
      throw new NarLimitError(
        `the upload decompresses to more than ${limits.maxRatio} times its size ` +
          `(${this.size} NAR bytes from ${this.fed} bytes so far)`,
        'compression_ratio',
      );
    }
  }

  digest(): NarDigest {
    this.structure?.end();
    return { narHash: new Hash('sha256', this.hasher.digest()), narSize: this.size };
  }
}

class PlainNarHasher implements NarHasher {
  constructor(private readonly output: NarOutput) {}

  write(chunk: Buffer): Promise<void> {
    this.output.fed += chunk.length;
    try {
      this.output.take(chunk);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return Promise.resolve();
  }

  async end(): Promise<NarDigest> {
    return this.output.digest();
  }

  destroy(): void {}
}

/** A decompressor whose output is hashed as it comes ('data' events, no queue, nothing piped). */
class StreamNarHasher implements NarHasher {
  private failure: Error | undefined;
  /** Settles the promise of the write in progress. */
  private settle: ((error?: Error | null) => void) | undefined;

  constructor(
    private readonly output: NarOutput,
    private readonly decompressor: Duplex,
    /** Writes `chunk` into the decompressor, in one or more pieces. */
    private readonly feed: (chunk: Buffer, write: (piece: Buffer) => void) => void,
    /** Throws if the input so far cannot be a whole file. */
    private readonly checkEnd: () => void = () => undefined,
  ) {
    decompressor.on('data', (chunk: Buffer) => {
      if (this.failure) return;
      try {
        output.take(chunk);
        releaseSpent(chunk);
      } catch (error) {
        // Not one more byte inflated for an upload that is refused anyway.
        this.fail(error as Error);
        decompressor.destroy();
      }
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
    this.output.fed += chunk.length;
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
    // A decompressor stopped by a refusal ends "prematurely": the refusal is the news.
    await finished(this.decompressor).catch((error: unknown) => {
      throw this.failure ?? error;
    });
    if (this.failure) throw this.failure;
    return this.output.digest();
  }

  destroy(): void {
    this.decompressor.destroy();
  }
}
