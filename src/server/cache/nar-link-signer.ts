/**
 * Signed NAR links: a URL that carries a cache token's read right for one NAR, for a short time,
 * so that Nix can fetch the bytes from this server without the proxy in between and without the
 * token. The link holds the grant the token carried (never the token), the NAR's key and an expiry,
 * MACed with a key derived from the server's token key (HMAC-SHA256: replicas sharing the token key
 * accept each other's links; a MAC is checked in about a microsecond, an EdDSA signature in ~50).
 * A link's read is checked exactly as the token's would be: the grant's slices must read the NAR
 * at the time of the GET, the token must not have expired (nor, for read tokens, been revoked),
 * and the link works for its NAR only and not after its own expiry.
 */
import { createHmac, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { HttpError } from '../../contracts/http-error.js';
import type { CacheGrant } from '../exchange/index.js';

/** How long a link works. Nix follows a redirect at once; the proxy asks again for a late one. */
export const NAR_LINK_TTL_SECONDS = 120;

const MAC_CONTEXT = 'sluice signed NAR link v1';

/** What a link carries: the NAR's key, its expiry (seconds) and the grant, shortened to what a read needs. */
interface LinkPayload {
  k: string;
  e: number;
  g: CacheGrant;
}

function refused(problem: string): HttpError {
  return new HttpError(403, `signed NAR link ${problem}`, 'bad_link');
}

/** The grant without what a read does not need: the identity beyond what ranks slices. */
function readGrant(grant: CacheGrant): CacheGrant {
  const identity = grant.identity as unknown as Record<string, string>;
  const kept =
    grant.kind === 'read'
      ? { name: identity.name ?? '' }
      : {
          issuer: identity.issuer ?? '',
          ...(identity.repository_id ? { repository_id: identity.repository_id } : {}),
        };
  return {
    kind: grant.kind,
    read: grant.read,
    ...(grant.readOwners ? { readOwners: grant.readOwners } : {}),
    write: grant.write,
    bindWrite: grant.bindWrite === true,
    identity: kept as CacheGrant['identity'],
    ...(grant.issued ? { issued: grant.issued } : {}),
    ...(grant.expiresAt !== undefined ? { expiresAt: grant.expiresAt } : {}),
  };
}

export class NarLinkSigner {
  private readonly macKey: Buffer;

  constructor(
    tokenKey: KeyObject,
    private readonly now: () => number = Date.now,
    readonly ttlSeconds = NAR_LINK_TTL_SECONDS,
  ) {
    const secret = tokenKey.export({ type: 'pkcs8', format: 'der' });
    this.macKey = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), MAC_CONTEXT, 32));
  }

  /**
   * When links made now expire (seconds): after the link's lifetime (or `ttlSeconds`, if shorter),
   * never after the token of `grant`.
   */
  expiry(grant: CacheGrant | undefined, ttlSeconds = this.ttlSeconds): number {
    const own = this.nowSeconds() + Math.min(ttlSeconds, this.ttlSeconds);
    return grant?.expiresAt === undefined ? own : Math.min(own, grant.expiresAt);
  }

  nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  /** The value of the link's `sig` parameter for the NAR `key`. */
  sign(key: string, grant: CacheGrant, expiresAt = this.expiry(grant)): string {
    const payload: LinkPayload = { k: key, e: expiresAt, g: readGrant(grant) };
    const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${encoded}.${this.mac(encoded).toString('base64url')}`;
  }

  /** The grant a link carries for the NAR `key`; throws 403 naming what is wrong with it. */
  verify(key: string, value: string): CacheGrant {
    const dot = value.indexOf('.');
    if (dot <= 0 || dot !== value.lastIndexOf('.')) throw refused('is malformed');
    const encoded = value.slice(0, dot);
    const given = Buffer.from(value.slice(dot + 1), 'base64url');
    const expected = this.mac(encoded);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw refused('has a bad signature (altered, or signed with another key)');
    let payload: LinkPayload;
    try {
      payload = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as LinkPayload;
    } catch {
      throw refused('is malformed');
    }
    if (payload.k !== key) throw refused('is for another NAR');
    if (typeof payload.e !== 'number' || this.now() >= payload.e * 1000)
      throw refused(`expired at ${new Date((payload.e || 0) * 1000).toISOString()}`);
    return payload.g;
  }

  private mac(encoded: string): Buffer {
    return createHmac('sha256', this.macKey).update(encoded).digest();
  }
}
