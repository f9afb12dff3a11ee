/**
 * The daemon's config file, written by the Action's main step and the benchmark (mode 0600: it
 * holds the token), read by the daemon. Parsed strictly: a bad file is a clear error naming the
 * field, before anything starts.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { NarCompression } from '../nix/nar.js';
import { isLoopbackHost, ListenError, parseHostPort, type HostPort } from './listen.js';
import { SECRET_PATTERN, type ProxyAuth } from './proxy-auth.js';
import { DEFAULT_AUDIENCE } from './server-api.js';

/** What the daemon compresses NARs with: the compressions Sluice verifies. */
export type PushCompression = NarCompression;

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

/** GitHub cache mode: no server; Nix reads the restored pack, post saves a new one (src/proxy/pack). */
export interface PackConfig {
  /** This job's narinfo signing key (`name:base64`), trusted only by this job's nix.conf. */
  signingKey: string;
  /** Directory the pack is restored into (its `sluice-pack/`), and written beside. */
  dir: string;
  /** The @actions/cache restore: exact key, then key prefixes, newest first within each. */
  restoreKey: string;
  restoreKeys: string[];
  /** What @actions/cache reads from the environment (ACTIONS_RESULTS_URL, ACTIONS_RUNTIME_TOKEN, …). */
  cacheEnv: Record<string, string>;
}

/** The Action's `pin` input: the daemon pins what the job produced once drained (docs/retention.md). */
export interface PinConfig {
  name: string;
  /** A duration such as `90d` or `1y`; absent: the pin never expires. */
  ttl?: string;
}

/** Pin names, as the server's `POST /_api/v1/pins` and `sluice pin` take them. */
export const PIN_NAME_PATTERN = /^[A-Za-z0-9._@+-]{1,100}$/;

export interface DaemonConfig {
  /** `host:port`; the host must be a loopback address, the port may be 0. */
  listen: string;
  /** The Sluice server's base URL; empty in GitHub cache mode. */
  server: string;
  /** Present: GitHub cache mode. */
  pack?: PackConfig;
  /** null: no cache token (anonymous, read-only): requests go without credentials. */
  token: string | null;
  /** ISO 8601, as the exchange answered it; null without a token. */
  tokenExpiresAt: string | null;
  audience: string;
  idTokenRequest?: IdTokenRequest;
  push: PushConfig;
  stateDir: string;
  /** Slices the token may read / write, as the exchange answered: only reported in the stats. */
  read: string[];
  write: string | null;
  /** The Action's `pin` input: pin what the job produced once drained. */
  pin?: PinConfig;
  /** The per-job credentials every request must carry (src/contracts/proxy-auth.ts). */
  auth: ProxyAuth;
  /** Files holding the job's secrets, deleted when the daemon stops. */
  secretFiles: string[];
}

/** The file as its writers may write it: push settings left out take their defaults. */
export type DaemonConfigFile = Omit<DaemonConfig, 'push' | 'secretFiles'> & {
  push: Partial<PushConfig> & { enabled: boolean };
  secretFiles?: string[];
};

export class DaemonConfigError extends Error {}

export const DAEMON_CONFIG_FILE = 'daemon.json';
export const DEFAULT_UPSTREAM_CACHES = ['https://cache.nixos.org'];
export const DEFAULT_PUSH_CONCURRENCY = 4;

/** The daemon's `listen`: HOST:PORT on a loopback host (`localhost` listens on 127.0.0.1). */
export function parseDaemonListen(listen: string): HostPort {
  let parsed: HostPort;
  try {
    parsed = parseHostPort(listen);
  } catch (error) {
    if (error instanceof ListenError) throw new DaemonConfigError(`listen '${listen}' is not host:port`);
    throw error;
  }
  if (!isLoopbackHost(parsed.host)) {
    throw new DaemonConfigError(
      `listen host '${parsed.host}' is not a loopback address: the daemon only listens on 127.0.0.1`,
    );
  }
  return { host: parsed.host === 'localhost' ? '127.0.0.1' : parsed.host, port: parsed.port };
}

/** An ISO 8601 date (the exchange's `expires_at`) → unix milliseconds; a DaemonConfigError otherwise. */
export function parseExpiry(value: unknown, field = 'tokenExpiresAt'): number {
  const ms = typeof value === 'string' && !/^\d+$/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) throw new DaemonConfigError(`${field} '${String(value)}' is not an ISO 8601 date`);
  return ms;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireString(obj: Record<string, unknown>, key: string, where = ''): string {
  const value = obj[key];
  if (typeof value !== 'string' || value.length === 0) {
    throw new DaemonConfigError(`${where}${key} must be a non-empty string`);
  }
  return value;
}

function requireUrl(value: string, field: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new DaemonConfigError(`${field} '${value}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new DaemonConfigError(`${field} '${value}' must be an http(s) URL`);
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
  if (!isRecord(value)) throw new DaemonConfigError('push must be an object');
  const push: PushConfig = {
    enabled: value.enabled === true,
    upstreamCaches: DEFAULT_UPSTREAM_CACHES,
    compression: 'zstd',
    concurrency: DEFAULT_PUSH_CONCURRENCY,
  };
  if (value.filter !== undefined && value.filter !== '') {
    if (typeof value.filter !== 'string') throw new DaemonConfigError('push.filter must be a string');
    try {
      new RegExp(value.filter);
    } catch (e) {
      throw new DaemonConfigError(`push.filter is not a valid regular expression: ${(e as Error).message}`);
    }
    push.filter = value.filter;
  }
  if (value.upstreamCaches !== undefined) {
    if (!Array.isArray(value.upstreamCaches) || value.upstreamCaches.some((u) => typeof u !== 'string')) {
      throw new DaemonConfigError('push.upstreamCaches must be an array of URLs');
    }
    push.upstreamCaches = (value.upstreamCaches as string[])
      .filter((u) => u.trim() !== '')
      .map((u, i) => requireUrl(u.trim(), `push.upstreamCaches[${i}]`));
  }
  if (value.compression !== undefined) {
    if (value.compression !== 'zstd' && value.compression !== 'xz' && value.compression !== 'none') {
      throw new DaemonConfigError(
        `push.compression '${String(value.compression)}' is not one of zstd, xz, none`,
      );
    }
    push.compression = value.compression;
  }
  if (value.concurrency !== undefined) {
    if (
      !Number.isInteger(value.concurrency) ||
      (value.concurrency as number) < 1 ||
      (value.concurrency as number) > 64
    ) {
      throw new DaemonConfigError('push.concurrency must be an integer from 1 to 64');
    }
    push.concurrency = value.concurrency as number;
  }
  return push;
}

function parsePackConfig(value: unknown): PackConfig {
  if (!isRecord(value)) throw new DaemonConfigError('pack must be an object');
  const restoreKeys = value.restoreKeys;
  if (!Array.isArray(restoreKeys) || restoreKeys.some((k) => typeof k !== 'string' || k === ''))
    throw new DaemonConfigError('pack.restoreKeys must be an array of non-empty strings');
  const cacheEnv = value.cacheEnv ?? {};
  if (!isRecord(cacheEnv) || Object.values(cacheEnv).some((v) => typeof v !== 'string'))
    throw new DaemonConfigError('pack.cacheEnv must be an object of strings');
  return {
    signingKey: requireString(value, 'signingKey', 'pack.'),
    dir: requireString(value, 'dir', 'pack.'),
    restoreKey: requireString(value, 'restoreKey', 'pack.'),
    restoreKeys: restoreKeys as string[],
    cacheEnv: cacheEnv as Record<string, string>,
  };
}

function parseAuth(value: unknown): ProxyAuth {
  if (!isRecord(value)) throw new DaemonConfigError('auth must be an object { cachePrefix, controlSecret }');
  const auth = {
    cachePrefix: requireString(value, 'cachePrefix', 'auth.'),
    controlSecret: requireString(value, 'controlSecret', 'auth.'),
  };
  for (const [key, secret] of Object.entries(auth)) {
    if (!SECRET_PATTERN.test(secret)) {
      throw new DaemonConfigError(`auth.${key} must be 32 to 128 characters of base64url`);
    }
  }
  if (auth.cachePrefix === auth.controlSecret) {
    throw new DaemonConfigError('auth.cachePrefix and auth.controlSecret must differ');
  }
  return auth;
}

function parseSecretFiles(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((f) => typeof f !== 'string' || !isAbsolute(f))) {
    throw new DaemonConfigError('secretFiles must be an array of absolute paths');
  }
  return value as string[];
}

export function parseDaemonConfig(value: unknown): DaemonConfig {
  if (!isRecord(value)) throw new DaemonConfigError('config must be a JSON object');
  const listen = requireString(value, 'listen');
  parseDaemonListen(listen);
  const pack = value.pack === undefined ? undefined : parsePackConfig(value.pack);
  const config: DaemonConfig = {
    listen,
    ...(pack ? { pack } : {}),
    server: pack && !value.server ? '' : requireUrl(requireString(value, 'server'), 'server'),
    token: value.token === null || value.token === undefined ? null : requireString(value, 'token'),
    tokenExpiresAt: null,
    audience: typeof value.audience === 'string' && value.audience !== '' ? value.audience : DEFAULT_AUDIENCE,
    push: parsePush(value.push),
    stateDir: requireString(value, 'stateDir'),
    read: Array.isArray(value.read) ? value.read.filter((s): s is string => typeof s === 'string') : [],
    write: typeof value.write === 'string' ? value.write : null,
    auth: parseAuth(value.auth),
    secretFiles: parseSecretFiles(value.secretFiles),
  };
  if (config.token !== null) {
    parseExpiry(value.tokenExpiresAt);
    config.tokenExpiresAt = value.tokenExpiresAt as string;
  }
  if (value.pin !== undefined && value.pin !== null) {
    if (!isRecord(value.pin)) throw new DaemonConfigError('pin must be an object { name, ttl? }');
    const name = requireString(value.pin, 'name', 'pin.');
    if (!PIN_NAME_PATTERN.test(name))
      throw new DaemonConfigError(`pin.name '${name}' must be 1-100 letters, digits, . _ @ + -`);
    config.pin = { name, ...(value.pin.ttl ? { ttl: requireString(value.pin, 'ttl', 'pin.') } : {}) };
  }
  if (value.idTokenRequest !== undefined && config.token !== null) {
    if (!isRecord(value.idTokenRequest))
      throw new DaemonConfigError('idTokenRequest must be an object { url, token }');
    config.idTokenRequest = {
      url: requireUrl(requireString(value.idTokenRequest, 'url', 'idTokenRequest.'), 'idTokenRequest.url'),
      token: requireString(value.idTokenRequest, 'token', 'idTokenRequest.'),
    };
  }
  return config;
}

/** Written then renamed, so the token never sits in a file with wider permissions, even briefly. */
export async function writeDaemonConfig(config: DaemonConfigFile): Promise<string> {
  const file = join(config.stateDir, DAEMON_CONFIG_FILE);
  await writeFile(`${file}.tmp`, JSON.stringify(config), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
  return file;
}

export async function readDaemonConfig(path: string): Promise<DaemonConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new DaemonConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DaemonConfigError(`config file ${path} is not JSON: ${(e as Error).message}`);
  }
  return parseDaemonConfig(json);
}
