/**
 * Who may talk to the daemon. The port is reachable by every local process, fixed-output
 * derivations included (they share the host's network), so every request carries a per-job
 * credential: the cache routes live under a secret path prefix (Nix sends it as part of the
 * substituter URL, which only a 0600 file holds), the control routes need a second secret as
 * `Authorization: Bearer` (read by the post-build hook and the post step from a 0600 file).
 * Anything else gets a 401 before any other work, and never reaches the cache server.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../../contracts/http-error.js';
import type { ProxyAuth } from '../../contracts/proxy-auth.js';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Equal strings, in time that does not depend on where they differ. */
function sameSecret(given: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(given), expected);
}

export class RequestGate {
  private readonly cachePrefix: Buffer;
  private readonly controlSecret: Buffer;

  constructor(auth: ProxyAuth) {
    this.cachePrefix = digest(auth.cachePrefix);
    this.controlSecret = digest(auth.controlSecret);
  }

  /** Throws a 401 unless the control request carries the control secret. */
  checkControl(req: IncomingMessage): void {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer (\S+)$/.exec(header);
    if (!match) {
      throw unauthorized(
        "the proxy's control routes need the job's control secret as `Authorization: Bearer`; this request has none",
        'Bearer realm="sluice-proxy"',
      );
    }
    if (!sameSecret(match[1]!, this.controlSecret)) {
      throw unauthorized(
        "the control secret in this request is not this job's",
        'Bearer realm="sluice-proxy", error="invalid_token"',
      );
    }
  }

  /**
   * The cache route inside a request path (`/<prefix>/nar/x.nar` → `/nar/x.nar`), or a 401 when
   * the path does not start with the job's prefix. The secret never travels further than here.
   */
  cachePath(pathname: string): string {
    const end = pathname.indexOf('/', 1);
    const prefix = end === -1 ? pathname.slice(1) : pathname.slice(1, end);
    if (end === -1 || !sameSecret(prefix, this.cachePrefix)) {
      throw unauthorized(
        "this proxy serves the binary cache only under the job's secret path (the substituter URL Sluice put in Nix's configuration); this request is not under it",
      );
    }
    return pathname.slice(end);
  }
}

function unauthorized(message: string, challenge?: string): HttpError {
  return new HttpError(401, message, 'unauthorized', challenge ? { 'www-authenticate': challenge } : {});
}
