/**
 * Who may talk to the daemon. The port is reachable by every local process, fixed-output
 * derivations included (they share the host's network), so every request carries a per-job
 * credential: the cache routes live under a secret path prefix (Nix sends it as part of the
 * substituter URL, which only a 0600 file holds), the control routes need a second secret as
 * `Authorization: Bearer` (read by the post-build hook and the post step from a 0600 file).
 * Anything else gets a 401 before any other work, and never reaches the cache server.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../../contracts/http-error.js';
import type { ProxyAuth } from '../../contracts/proxy-auth.js';

/**
 * One secret, compared in time that does not depend on where a candidate differs from it. Every
 * cache request is checked (Nix sends thousands), so without a hash per request: the candidate's
 * bytes are copied into a buffer of the secret's size and compared with `timingSafeEqual`. Only
 * the length can show, and it is no secret: the secrets are random base64url of a known size
 * (SECRET_PATTERN).
 */
class Secret {
  private readonly expected: Buffer;
  private readonly candidate: Buffer;

  constructor(value: string) {
    this.expected = Buffer.from(value, 'utf8');
    this.candidate = Buffer.alloc(this.expected.length);
  }

  matches(given: string): boolean {
    if (Buffer.byteLength(given, 'utf8') !== this.expected.length) return false;
    // Synchronous: no other request can use the buffer between the write and the comparison.
    this.candidate.write(given, 'utf8');
    return timingSafeEqual(this.candidate, this.expected);
  }
}

export class RequestGate {
  private readonly cachePrefix: Secret;
  private readonly controlSecret: Secret;

  constructor(auth: ProxyAuth) {
    this.cachePrefix = new Secret(auth.cachePrefix);
    this.controlSecret = new Secret(auth.controlSecret);
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
    if (!this.controlSecret.matches(match[1]!)) {
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
    if (end === -1 || !this.cachePrefix.matches(prefix)) {
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
