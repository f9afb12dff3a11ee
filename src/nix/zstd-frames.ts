/**
 * Node 24's zstd decompressor silently drops whatever follows the end of a frame within the same
 * chunk, so concatenated frames (pzstd, files compressed in parts) lose data or fail with "Unknown
 * frame descriptor". This Transform walks the zstd frame format (RFC 8878: frame header, block
 * headers, checksum) and re-chunks the input so that no chunk spans two frames; skippable frames
 * are dropped. The decompressor after it then sees each frame on its own and decodes them all.
 *
 * For uploads the walk also refuses what a NAR file has no use for: skippable frames (padding that
 * would be stored and served) and frames whose window needs more memory than allowed.
 */
import { Transform, type TransformCallback } from 'node:stream';

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

type Unit =
  | 'magic'
  | 'descriptor'
  | 'headerRest'
  | 'blockHeader'
  | 'blockContent'
  | 'checksum'
  | 'skipSize'
  | 'skipContent';

// Units whose bytes are parsed (the others are only counted).
const PARSED: ReadonlySet<Unit> = new Set(['magic', 'descriptor', 'headerRest', 'blockHeader', 'skipSize']);
const DICT_ID_BYTES = [0, 1, 2, 4];
const CONTENT_SIZE_BYTES = [0, 2, 4, 8];

export class ZstdFrameError extends Error {}

/** A frame asks for a larger window (decoder memory) than `maxWindowBytes`. */
export class ZstdWindowError extends ZstdFrameError {}

/** A skippable frame where `refuseSkippable` is set. */
export class ZstdSkippableFrameError extends ZstdFrameError {}

export interface ZstdFrameRules {
  /** Refuse skippable frames instead of dropping them. */
  refuseSkippable?: boolean;
  /** Refuse frames whose window (what the decoder must keep) is larger. */
  maxWindowBytes?: number;
}

const MiB = 1024 * 1024;
const mib = (bytes: number) => `${Math.round((bytes / MiB) * 10) / 10} MiB`;

/** A Transform over ZstdFrameScanner: what it emits, it pushes. */
export class ZstdFrameSplitter extends Transform {
  private readonly scanner = new ZstdFrameScanner();

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.scanner.split(chunk, (piece) => this.push(piece));
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.scanner.finish();
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }
}

/**
 * The frame walk itself, without a stream: `split` emits each chunk's zstd-frame bytes in pieces
 * that never span two frames (views of the chunk, except a frame's magic number, which is a copy).
 */
export class ZstdFrameScanner {
  private unit: Unit = 'magic';
  private need = 4;
  private parsed: number[] = [];
  private checksum = false;
  private singleSegment = false;
  private dictIdBytes = 0;
  /** Where the current frame began, for messages. */
  private frameStart = 0;
  private lastBlock = false;
  /** Bytes of input consumed so far, for error messages. */
  private position = 0;
  /** Whether the bytes now passing belong to a zstd frame (forwarded) rather than a skippable one. */
  private forwarding = false;
  /** Where the current `split` call emits (advance() emits a frame's magic number). */
  private emit: (piece: Buffer) => void = () => undefined;

  constructor(private readonly rules: ZstdFrameRules = {}) {}

  /** Emits the pieces of `chunk`; throws a ZstdFrameError where the data is not zstd frames. */
  split(chunk: Buffer, emit: (piece: Buffer) => void): void {
    this.emit = emit;
    let start = 0;
    let i = 0;
    while (i < chunk.length) {
      const take = Math.min(this.need, chunk.length - i);
      if (PARSED.has(this.unit)) this.parsed.push(...chunk.subarray(i, i + take));
      i += take;
      this.position += take;
      this.need -= take;
      if (this.need > 0) break;
      const unit = this.unit;
      const frameEnded = this.advance();
      if (unit === 'magic') start = i; // advance() emitted the magic itself, once it knew the kind
      if (frameEnded) {
        if (this.forwarding && i > start) emit(chunk.subarray(start, i));
        start = i;
        this.forwarding = false;
      }
    }
    if (this.forwarding && i > start) emit(chunk.subarray(start, i));
  }

  /** Throws unless the data so far ended at the end of a frame. */
  finish(): void {
    if (this.unit !== 'magic' || this.need !== 4) {
      throw new ZstdFrameError('zstd data ends in the middle of a frame (truncated)');
    }
  }

  /** Moves past a completed unit; returns true when a frame (zstd or skippable) ended with it. */
  private advance(): boolean {
    const bytes = Buffer.from(this.parsed);
    this.parsed = [];
    switch (this.unit) {
      case 'magic': {
        const magic = bytes.readUInt32LE(0);
        this.frameStart = this.position - 4;
        if (magic === ZSTD_MAGIC) {
          this.emit(bytes);
          this.forwarding = true;
          return this.next('descriptor', 1);
        }
        if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          if (this.rules.refuseSkippable) {
            throw new ZstdSkippableFrameError(
              `zstd skippable frame at byte ${this.frameStart}: padding is not accepted in a NAR file`,
            );
          }
          return this.next('skipSize', 4);
        }
        throw new ZstdFrameError(`not zstd data: no frame magic number at byte ${this.frameStart}`);
      }
      case 'descriptor': {
        const d = bytes[0]!;
        if (d & 0x08) throw new ZstdFrameError('zstd frame header has its reserved bit set');
        const singleSegment = (d >> 5) & 1;
        const contentSizeFlag = d >> 6;
        this.checksum = ((d >> 2) & 1) === 1;
        this.singleSegment = singleSegment === 1;
        this.dictIdBytes = DICT_ID_BYTES[d & 3]!;
        const rest =
          (singleSegment ? 0 : 1) +
          DICT_ID_BYTES[d & 3]! +
          (contentSizeFlag === 0 ? singleSegment : CONTENT_SIZE_BYTES[contentSizeFlag]!);
        return this.next('headerRest', rest);
      }
      case 'headerRest':
        this.checkWindow(bytes);
        return this.next('blockHeader', 3);
      case 'blockHeader': {
        const header = bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16);
        this.lastBlock = (header & 1) === 1;
        const type = (header >> 1) & 3;
        if (type === 3) throw new ZstdFrameError('zstd block has the reserved block type');
        return this.next('blockContent', type === 1 ? 1 : header >>> 3);
      }
      case 'blockContent':
        if (!this.lastBlock) return this.next('blockHeader', 3);
        if (this.checksum) return this.next('checksum', 4);
        return this.endFrame();
      case 'checksum':
        return this.endFrame();
      case 'skipSize':
        return this.next('skipContent', bytes.readUInt32LE(0));
      case 'skipContent':
        return this.endFrame();
    }
  }

  /** The window the frame header declares (RFC 8878 3.1.1.1.2), against `maxWindowBytes`. */
  private checkWindow(rest: Buffer): void {
    const max = this.rules.maxWindowBytes;
    if (max === undefined) return;
    let window: number;
    if (this.singleSegment) {
      // No window descriptor: the window is the whole content, whose size follows the dictionary id.
      const sizeBytes = rest.subarray(this.dictIdBytes);
      window =
        sizeBytes.length === 2
          ? sizeBytes.readUInt16LE(0) + 256
          : sizeBytes.length === 8
            ? Number(sizeBytes.readBigUInt64LE(0))
            : sizeBytes.readUIntLE(0, sizeBytes.length);
    } else {
      const descriptor = rest[0]!;
      const base = 2 ** (10 + (descriptor >> 3));
      window = base + (base / 8) * (descriptor & 7);
    }
    if (window > max) {
      throw new ZstdWindowError(
        `zstd frame at byte ${this.frameStart} needs a ${mib(window)} window to decompress, over the limit of ${mib(max)}`,
      );
    }
  }

  private next(unit: Unit, need: number): boolean {
    this.unit = unit;
    this.need = need;
    // Zero-length units (an empty header rest, an empty raw block) complete at once.
    return need === 0 ? this.advance() : false;
  }

  private endFrame(): boolean {
    this.unit = 'magic';
    this.need = 4;
    return true;
  }
}
