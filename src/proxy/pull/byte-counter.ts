import { Transform, type TransformCallback } from 'node:stream';

/** A passthrough that counts bytes, calling `onBytes` per chunk (for live stats). */
export class ByteCounter extends Transform {
  bytes = 0;

  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    done(null, chunk);
  }
}
