/**
 * The messages between the server's main thread and its verification workers (verify-pool.ts,
 * verify-worker.ts). One worker checks many uploads at once, each a session named by `id`; the
 * bytes travel in SharedArrayBuffers the main thread filled, so a chunk costs a message, not a copy.
 */
import type { NarLimits } from '../../nix/nar-hasher.js';
import type { NarCompression } from '../../nix/nar.js';

export type ToWorker =
  /** `hashFile`: whether the file's own hash (FileHash) is wanted too. */
  | { type: 'start'; id: number; compression: NarCompression; limits: NarLimits; hashFile: boolean }
  /** Bytes `[0, length)` of `bytes`: hashed as the file, decompressed and checked as the NAR. */
  | { type: 'chunk'; id: number; bytes: SharedArrayBuffer; length: number }
  | { type: 'end'; id: number }
  /** The upload stopped: free its decompressor; nothing more is sent for it. */
  | { type: 'destroy'; id: number };

/** What an upload is refused with: the HttpError the main thread throws. */
export interface Refusal {
  status: number;
  message: string;
  reason: string;
}

/** Digests as raw sha256 bytes (a Hash does not survive structured cloning). */
export interface DigestMessage {
  /** Absent when the session was started without `hashFile`. */
  fileHash?: Uint8Array;
  fileSize: number;
  narHash: Uint8Array;
  narSize: number;
}

export type FromWorker =
  /** The last chunk sent for `id` is checked: its buffer may be filled again. */
  | { type: 'consumed'; id: number }
  | { type: 'refused'; id: number; refusal: Refusal }
  | { type: 'digest'; id: number; digest: DigestMessage };
