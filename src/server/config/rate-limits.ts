/**
 * The rate limits' config: `rate_limits` (per client address: token exchanges, failed
 * authentications) and `trust_proxy` (whose X-Forwarded-For names the client). Enforced by
 * src/server/http/rate-limit.ts.
 */
import { BlockList, isIP } from 'node:net';
import { ConfigError } from './config-error.js';
import { parseDuration } from './units.js';
import type { Validator } from './yaml-validator.js';

export interface Rate {
  count: number;
  periodSeconds: number;
}

export interface RateLimits {
  /** `POST /_api/v1/token`, successful or not; null: unlimited. */
  tokenExchanges: Rate | null;
  /** Requests whose credentials were refused (401); null: unlimited. */
  failedAuth: Rate | null;
}

/** `10.0.0.1`, `10.0.0.0/8`, `fd00::/8` → a BlockList; throws naming a bad entry. */
export function trustedProxies(entries: string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', bits] = entry.split('/');
    const family = isIP(address);
    const prefix = bits === undefined ? undefined : Number(bits);
    const maxBits = family === 6 ? 128 : 32;
    if (
      family === 0 ||
      (bits !== undefined && !(Number.isInteger(prefix) && prefix! >= 0 && prefix! <= maxBits))
    )
      throw new Error(`'${entry}' is not an IP address or CIDR range`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, prefix, type);
  }
  return list;
}

/** `60/1m` (at most 60 per minute), or `off`. */
export function parseRate(value: unknown): Rate | null {
  if (value === 'off' || value === false) return null;
  const [count, period, extra] = String(value).split('/');
  const parsed = Number(count?.trim());
  if (extra !== undefined || period === undefined || !Number.isSafeInteger(parsed) || parsed <= 0)
    throw new ConfigError(`${JSON.stringify(value)} is not a rate such as 60/1m, or off`);
  return { count: parsed, periodSeconds: parseDuration(period.trim()) };
}

export function parseRateLimits(v: Validator, value: unknown, defaults: RateLimits): RateLimits {
  const raw = v.object(['rate_limits'], value, ['token_exchanges', 'failed_auth']);
  const rate = (key: string, fallback: Rate | null) =>
    raw[key] === undefined ? fallback : v.parse(['rate_limits', key], raw[key], parseRate);
  return {
    tokenExchanges: rate('token_exchanges', defaults.tokenExchanges),
    failedAuth: rate('failed_auth', defaults.failedAuth),
  };
}

export function parseTrustProxy(v: Validator, value: unknown): string[] {
  const list = v.list(['trust_proxy'], value).map((item, i) => v.string(['trust_proxy', i], item).trim());
  v.parse(['trust_proxy'], list, (entries) => {
    try {
      return trustedProxies(entries as string[]);
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  });
  return list;
}
