/**
 * The daemon's config file, written by the Action's main step (mode 0600: it holds the token).
 * Parsed strictly: a bad file is a clear error naming the field, before anything starts.
 */
import { readFile } from 'node:fs/promises';
import type { PinConfig } from './pin.js';
import { isAbsolute } from 'node:path';
import { SECRET_PATTERN, type ProxyAuth } from './auth.js';

export type PushCompression = 'zstd' | 'xz' | 'none';

export interface IdTokenRequest {
  url: string;
  token: string;
}

export interface PushConfig {
  enabled: boolean;
  /** Regex source; store paths it matches are never pushed. */
  filter?: string;
  upstreamCaches: string[];
  compression: PushCompression;
  /** Uploads in flight at once. */
  concurrency: number;
}

export interface DaemonConfig {
  /** `host:port`; the host must be a loopback address, the port may be 0. */
  listen: string;
  /** The Sluice server's base URL. */
  server: string;
  /** null: no cache token (anonymous, read-only): requests go without credentials. */
  token: string | null;
  /** Unix milliseconds; null without a token. */
  tokenExpiresAt: number | null;
  audience: string;
  idTokenRequest?: IdTokenRequest;
  push: PushConfig;
  stateDir: string;
  /** Slices the token may read / write, as the exchange answered: only reported in the stats. */
  read: string[];
  write: string | null;
  /** The Action's `pin` input: pin what the job produced once drained. */
  pin?: PinConfig;
  /** The per-job credentials every request must carry (src/proxy/auth.ts). */
  auth: ProxyAuth;
  /** Files holding the job's secrets, deleted when the daemon stops. */
  secretFiles: string[];
}

export class ConfigError extends Error {}

/** The hosts the daemon will listen on: it holds the cache token, so never a routable address. */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);
export const DEFAULT_UPSTREAM_CACHES = ['https://cache.nixos.org'];
export const DEFAULT_PUSH_CONCURRENCY = 4;

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(listen);
  if (!match) throw new ConfigError(`listen '${listen}' is not host:port`);
  const host = match[1]!;
  const port = Number(match[2]);
  if (!LOOPBACK_HOSTS.has(host)) {
    throw new ConfigError(
      `listen host '${host}' is not a loopback address: the daemon only listens on 127.0.0.1`,
    );
  }
  if (port > 65535) throw new ConfigError(`listen port ${port} is out of range`);
  return { host: host === 'localhost' ? '127.0.0.1' : host.replace(/^\[(.*)\]$/, '$1'), port };
}

/** `expires_at` as the exchange answers it: unix seconds, unix milliseconds or an ISO date. */
export function parseExpiry(value: unknown, field = 'tokenExpiresAt'): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 1e12 ? value * 1000 : value;
  if (typeof value === 'string') {
    if (/^\d+$/.test(value)) return parseExpiry(Number(value), field);
    const ms = Date.parse(value);
    if (!Number.isNaN(ms)) return ms;
  }
  throw new ConfigError(`${field} '${String(value)}' is not a date or unix time`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireString(obj: Record<string, unknown>, key: string, where = ''): string {
  const value = obj[key];
  if (typeof value !== 'string' || value.length === 0) {
    throw new ConfigError(`${where}${key} must be a non-empty string`);
  }
  return value;
}

function requireUrl(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${field} '${value}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${field} '${value}' must be an http(s) URL`);
  }
  return value.replace(/\/+$/, '');
}

function parsePush(value: unknown): PushConfig {
  if (value === undefined) {
    return {
      enabled: false,
      upstreamCaches: DEFAULT_UPSTREAM_CACHES,
      compression: 'zstd',
      concurrency: DEFAULT_PUSH_CONCURRENCY,
    };
  }
  if (!isRecord(value)) throw new ConfigError('push must be an object');
  const push: PushConfig = {
    enabled: value.enabled === true,
    upstreamCaches: DEFAULT_UPSTREAM_CACHES,
    compression: 'zstd',
    concurrency: DEFAULT_PUSH_CONCURRENCY,
  };
  if (value.filter !== undefined && value.filter !== '') {
    if (typeof value.filter !== 'string') throw new ConfigError('push.filter must be a string');
    try {
      new RegExp(value.filter);
    } catch (e) {
      throw new ConfigError(`push.filter is not a valid regular expression: ${(e as Error).message}`);
    }
    push.filter = value.filter;
  }
  if (value.upstreamCaches !== undefined) {
    if (!Array.isArray(value.upstreamCaches) || value.upstreamCaches.some((u) => typeof u !== 'string')) {
      throw new ConfigError('push.upstreamCaches must be an array of URLs');
    }
    push.upstreamCaches = (value.upstreamCaches as string[])
      .filter((u) => u.trim() !== '')
      .map((u, i) => requireUrl(u.trim(), `push.upstreamCaches[${i}]`));
  }
  if (value.compression !== undefined) {
    if (value.compression !== 'zstd' && value.compression !== 'xz' && value.compression !== 'none') {
      throw new ConfigError(`push.compression '${String(value.compression)}' is not one of zstd, xz, none`);
    }
    push.compression = value.compression;
  }
  if (value.concurrency !== undefined) {
    if (
      !Number.isInteger(value.concurrency) ||
      (value.concurrency as number) < 1 ||
      (value.concurrency as number) > 64
    ) {
      throw new ConfigError('push.concurrency must be an integer from 1 to 64');
    }
    push.concurrency = value.concurrency as number;
  }
  return push;
}

function parseAuth(value: unknown): ProxyAuth {
  if (!isRecord(value)) throw new ConfigError('auth must be an object { cachePrefix, controlSecret }');
  const auth = {
    cachePrefix: requireString(value, 'cachePrefix', 'auth.'),
    controlSecret: requireString(value, 'controlSecret', 'auth.'),
  };
  for (const [key, secret] of Object.entries(auth)) {
    if (!SECRET_PATTERN.test(secret)) {
      throw new ConfigError(`auth.${key} must be 32 to 128 characters of base64url`);
    }
  }
  if (auth.cachePrefix === auth.controlSecret) {
    throw new ConfigError('auth.cachePrefix and auth.controlSecret must differ');
  }
  return auth;
}

function parseSecretFiles(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((f) => typeof f !== 'string' || !isAbsolute(f))) {
    throw new ConfigError('secretFiles must be an array of absolute paths');
  }
  return value as string[];
}

export function parseConfig(value: unknown): DaemonConfig {
  if (!isRecord(value)) throw new ConfigError('config must be a JSON object');
  const listen = requireString(value, 'listen');
  parseListen(listen);
  const config: DaemonConfig = {
    listen,
    server: requireUrl(requireString(value, 'server'), 'server'),
    token: value.token === null || value.token === undefined ? null : requireString(value, 'token'),
    tokenExpiresAt: null,
    audience: typeof value.audience === 'string' && value.audience !== '' ? value.audience : 'sluice',
    push: parsePush(value.push),
    stateDir: requireString(value, 'stateDir'),
    read: Array.isArray(value.read) ? value.read.filter((s): s is string => typeof s === 'string') : [],
    write: typeof value.write === 'string' ? value.write : null,
    auth: parseAuth(value.auth),
    secretFiles: parseSecretFiles(value.secretFiles),
  };
  if (config.token !== null) config.tokenExpiresAt = parseExpiry(value.tokenExpiresAt);
  if (value.pin !== undefined && value.pin !== null) {
    if (!isRecord(value.pin)) throw new ConfigError('pin must be an object { name, ttl? }');
    const name = requireString(value.pin, 'name', 'pin.');
    if (!/^[A-Za-z0-9._@+-]{1,100}$/.test(name))
      throw new ConfigError(`pin.name '${name}' must be 1-100 letters, digits, . _ @ + -`);
    config.pin = { name, ...(value.pin.ttl ? { ttl: requireString(value.pin, 'ttl', 'pin.') } : {}) };
  }
  if (value.idTokenRequest !== undefined && config.token !== null) {
    if (!isRecord(value.idTokenRequest))
      throw new ConfigError('idTokenRequest must be an object { url, token }');
    config.idTokenRequest = {
      url: requireUrl(requireString(value.idTokenRequest, 'url', 'idTokenRequest.'), 'idTokenRequest.url'),
      token: requireString(value.idTokenRequest, 'token', 'idTokenRequest.'),
    };
  }
  return config;
}

export async function readConfig(path: string): Promise<DaemonConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not JSON: ${(e as Error).message}`);
  }
  return parseConfig(json);
}
