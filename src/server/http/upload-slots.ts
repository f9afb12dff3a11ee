/**
 * How many NAR uploads run at once, in all and per token. Each holds a decompressor (up to
 * `max_decompression_memory`) and two stage buffers for as long as its body takes, so the count is
 * what bounds the memory uploads can cost. Beyond it a new upload is refused before its body is
 * asked for: 429 when its own token has too many (that client should slow down), 503 when the
 * server is full; both with Retry-After, which the Action's proxy honours and Nix retries through.
 */
import { createHash } from 'node:crypto';
import { HttpError } from '../../contracts/http-error.js';

/** Seconds: an upload slot frees up as soon as any upload ends. */
export const UPLOAD_RETRY_AFTER_SECONDS = 2;

export interface UploadSlotLimits {
  maxConcurrentUploads: number;
  maxConcurrentUploadsPerToken: number;
}

export class UploadSlots {
  private active = 0;
  /** Uploads in progress per token, keyed by the token's hash (no token kept in memory). */
  private readonly perToken = new Map<string, number>();

  constructor(private readonly limits: UploadSlotLimits) {}

  /** Takes a slot for an upload made with `token`, or throws 429/503; call the result once it ends. */
  acquire(token: string): () => void {
    const key = createHash('sha256').update(token).digest('base64url');
    const mine = this.perToken.get(key) ?? 0;
    const retryAfter = { 'retry-after': String(UPLOAD_RETRY_AFTER_SECONDS) };
    if (mine >= this.limits.maxConcurrentUploadsPerToken) {
      throw new HttpError(
        429,
        `this token already has ${mine} uploads in progress, the most one token may have ` +
          '(max_concurrent_uploads_per_token): retry once one has ended',
        'token_upload_limit',
        retryAfter,
      );
    }
    if (this.active >= this.limits.maxConcurrentUploads) {
      throw new HttpError(
        503,
        `the server has ${this.active} uploads in progress, the most it takes at once ` +
          '(max_concurrent_uploads): retry shortly',
        'server_upload_limit',
        retryAfter,
      );
    }
    this.active++;
    this.perToken.set(key, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      const left = (this.perToken.get(key) ?? 1) - 1;
      if (left === 0) this.perToken.delete(key);
      else this.perToken.set(key, left);
    };
  }
}
