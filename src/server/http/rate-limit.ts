/**
 * Per client address: token exchanges, and failed authentications, each within a configured rate
 * (a token bucket: up to `count` at once, refilled evenly over `period`); beyond it, 429 with
 * Retry-After. In memory, per server process: each replica limits on its own.
 */
import type { IncomingMessage } from 'node:http';
import { isIP, type BlockList } from 'node:net';
import { HttpError } from '../../contracts/http-error.js';
import { trustedProxies, type Rate, type RateLimits } from '../config/rate-limits.js';

/** Addresses tracked at most; beyond it the longest-tracked is forgotten (it starts afresh). */
const TRACKED_ADDRESSES = 10_000;

class Buckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: Rate,
    private readonly now: () => number,
  ) {}

  /** Tokens in the address's bucket now (a full bucket for an address not tracked). */
  private level(address: string): { tokens: number; at: number } {
    const perMs = this.rate.count / (this.rate.periodSeconds * 1000);
    const bucket = this.buckets.get(address) ?? { tokens: this.rate.count, at: this.now() };
    const now = this.now();
    return { tokens: Math.min(this.rate.count, bucket.tokens + (now - bucket.at) * perMs), at: now };
  }

  /** Seconds until one more is allowed, or 0 when one is allowed now. */
  wait(address: string): number {
    if (!this.buckets.has(address)) return 0;
    const { tokens } = this.level(address);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * this.rate.periodSeconds) / this.rate.count);
  }

  take(address: string): void {
    const bucket = this.level(address);
    bucket.tokens = Math.max(0, bucket.tokens - 1);
    this.buckets.delete(address);
    if (this.buckets.size >= TRACKED_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(address, bucket);
  }
}

function plain(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The client's address: the connection's peer, unless that peer is a trusted proxy; then the
 * nearest address in X-Forwarded-For (read from the right) that is not a trusted proxy. Without
 * `trusted`, X-Forwarded-For is ignored: anyone can write it.
 */
export function clientAddress(req: IncomingMessage, trusted: BlockList | null): string {
  let address = plain(req.socket.remoteAddress ?? 'unknown');
  if (!trusted) return address;
  const isTrusted = (ip: string) => isIP(ip) !== 0 && trusted.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
  const header = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((hop) => hop.trim());
  while (isTrusted(address) && hops.length > 0) {
    const next = plain(hops.pop()!);
    if (isIP(next) === 0) break; // a malformed entry: stop at the last address we can vouch for
    address = next;
  }
  return address;
}

export interface RequestGuard {
  /** Throws 429 when this request is over a limit; counts a token exchange. */
  admit(req: IncomingMessage, route: string): void;
  /** Counts a refused authentication (a 401) against the request's address. */
  refused(req: IncomingMessage, route: string): void;
}

/** Whether the request tries to authenticate: a token exchange, or any request with credentials. */
function authenticates(req: IncomingMessage, route: string): boolean {
  return route === 'token' || req.headers.authorization !== undefined;
}

function tooMany(what: string, rate: Rate, address: string, seconds: number): HttpError {
  return new HttpError(
    429,
    `too many ${what} from ${address} (at most ${rate.count} per ${rate.periodSeconds} s): retry in ${seconds} s`,
    'rate_limited',
    { 'retry-after': String(seconds) },
  );
}

export function createRequestGuard(
  limits: RateLimits,
  trustProxy: string[],
  now: () => number = Date.now,
  onLimited: (limit: string) => void = () => {},
): RequestGuard {
  const trusted = trustProxy.length > 0 ? trustedProxies(trustProxy) : null;
  const exchanges = limits.tokenExchanges && new Buckets(limits.tokenExchanges, now);
  const failures = limits.failedAuth && new Buckets(limits.failedAuth, now);
  return {
    admit(req, route) {
      if (!authenticates(req, route)) return;
      const address = clientAddress(req, trusted);
      const failedWait = failures?.wait(address) ?? 0;
      if (failedWait > 0) {
        onLimited('failed_auth');
        throw tooMany('failed authentications', limits.failedAuth!, address, failedWait);
      }
      if (route !== 'token' || !exchanges) return;
      const wait = exchanges.wait(address);
      if (wait > 0) {
        onLimited('token_exchanges');
        throw tooMany('token exchanges', limits.tokenExchanges!, address, wait);
      }
      exchanges.take(address);
    },
    refused(req, route) {
      if (failures && authenticates(req, route)) failures.take(clientAddress(req, trusted));
    },
  };
}
