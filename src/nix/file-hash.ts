/** The sha256 and size of a file fed chunk by chunk: a narinfo's FileHash and FileSize. */
import { createHash } from 'node:crypto';
import { Hash } from './hash.js';

export interface FileDigest {
  fileHash: Hash;
  fileSize: number;
}

export class FileHasher {
  private readonly hasher = createHash('sha256');
  private size = 0;

  update(chunk: Uint8Array): void {
    this.hasher.update(chunk);
    this.size += chunk.length;
  }

  /** Bytes fed so far. */
  get fileSize(): number {
    return this.size;
  }

  /** Once, after the last chunk. */
  digest(): FileDigest {
    return { fileHash: new Hash('sha256', this.hasher.digest()), fileSize: this.size };
  }
}
