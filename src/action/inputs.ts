/**
 * The Action's inputs, read once inside run() into a typed object. Every invalid value is misuse
 * of the Action, so it throws an error naming the input and what it accepts.
 */
import * as core from '@actions/core';
import { Inputs } from './constants.js';
import {
  isLoopbackAddress,
  isLoopbackHost,
  parseHostPort,
  urlHost,
  type HostPort,
} from '../contracts/listen.js';
import { PIN_NAME_PATTERN, type PushCompression } from '../contracts/daemon-config.js';
import { MAX_DRAIN_DEADLINE_SECONDS } from '../contracts/control-api.js';
import { DEFAULT_AUDIENCE } from '../contracts/server-api.js';

export type PushMode = 'auto' | 'true' | 'false';

export type Backend = 'server' | 'github';

export interface ActionInputs {
  /** Absent in GitHub cache mode. */
  server: URL | undefined;
  /** `server`: a Sluice server; `github`: packs in the GitHub Actions cache (src/proxy/pack). */
  backend: Backend;
  /** Part of the pack keys (GitHub cache mode), to keep unrelated jobs' packs apart. */
  key: string;
  /** Most NAR bytes a new pack holds (GitHub cache mode). */
  maxPackBytes: number;
  audience: string;
  push: PushMode;
  /** Source of a regular expression; store paths it matches are never pushed. */
  pushFilter: string | undefined;
  upstreamCaches: string[];
  compression: PushCompression;
  /** host:port for the local proxy; port 0 lets the daemon pick one. */
  listen: { host: string; port: number };
  drainTimeoutSeconds: number;
  strict: boolean;
  summary: boolean;
  /** Pin what the job produced under this name in the write slice (releases). */
  pin: { name: string; ttl?: string } | undefined;
}

export class InputError extends Error {}

export function readInputs(): ActionInputs {
  const serverInput = core.getInput(Inputs.Server).trim();
  const backend = parseBackend(core.getInput(Inputs.Backend) || 'auto', serverInput);
  return {
    server: backend === 'server' ? parseServer(serverInput) : undefined,
    backend,
    key: parseKey(core.getInput(Inputs.Key)),
    maxPackBytes: parseSize(Inputs.MaxPackSize, core.getInput(Inputs.MaxPackSize) || '5GiB'),
    audience: nonEmpty(Inputs.Audience, core.getInput(Inputs.Audience) || DEFAULT_AUDIENCE),
    push: oneOf(Inputs.Push, core.getInput(Inputs.Push) || 'auto', ['auto', 'true', 'false'] as const),
    pushFilter: parseRegex(Inputs.PushFilter, core.getInput(Inputs.PushFilter)),
    upstreamCaches: parseUrls(Inputs.UpstreamCaches, core.getInput(Inputs.UpstreamCaches)),
    compression: oneOf(Inputs.Compression, core.getInput(Inputs.Compression) || 'zstd', [
      'zstd',
      'xz',
      'none',
    ] as const),
    listen: parseListen(core.getInput(Inputs.Listen) || '127.0.0.1:0'),
    drainTimeoutSeconds: parseDrainTimeout(core.getInput(Inputs.DrainTimeout) || '120'),
    strict: parseBoolean(Inputs.Strict, core.getInput(Inputs.Strict) || 'false'),
    summary: parseBoolean(Inputs.Summary, core.getInput(Inputs.Summary) || 'true'),
    pin: parsePin(core.getInput(Inputs.Pin), core.getInput(Inputs.PinTtl)),
  };
}

/** `pin` names a pin (as `sluice pin` does); `pin-ttl` is a duration such as 90d or 1y. */
export function parsePin(name: string, ttl: string): { name: string; ttl?: string } | undefined {
  if (name.trim() === '') {
    if (ttl.trim() !== '') throw new InputError(`Input 'pin-ttl' needs 'pin' (the pin's name).`);
    return undefined;
  }
  if (!PIN_NAME_PATTERN.test(name.trim()))
    throw new InputError(`Input 'pin' must be 1-100 letters, digits, . _ @ + -; got '${name}'.`);
  if (ttl.trim() !== '' && !/^\d+[smhdwy]$/.test(ttl.trim()))
    throw new InputError(`Input 'pin-ttl' must be a duration such as 90d or 1y; got '${ttl}'.`);
  return { name: name.trim(), ...(ttl.trim() ? { ttl: ttl.trim() } : {}) };
}

/** `auto`: a server when `server` is set, the GitHub Actions cache otherwise. */
function parseBackend(value: string, server: string): Backend {
  const backend = oneOf(Inputs.Backend, value, ['auto', 'server', 'github'] as const);
  if (backend === 'server' && server === '')
    throw new InputError(`Input 'backend' is 'server' but input 'server' is empty: give the server's URL.`);
  if (backend === 'github' && server !== '')
    throw new InputError(`Input 'backend' is 'github' but input 'server' is set: use one or the other.`);
  return backend === 'auto' ? (server === '' ? 'github' : 'server') : backend;
}

export function parseKey(value: string): string {
  const key = value.trim();
  if (key.length > 100 || !/^[A-Za-z0-9._+=@/-]*$/.test(key)) {
    throw new InputError(
      `Input 'key' must be at most 100 letters, digits or ._+=@/- (it becomes part of the cache keys); got '${value}'.`,
    );
  }
  return key;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
};

/** Bytes from `5GiB`, `500 MiB`, `1GB` or a plain number. */
export function parseSize(name: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = match ? SIZE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined)
    throw new InputError(`Input '${name}' must be a size such as 5GiB, 500MiB or 1000000; got '${value}'.`);
  return Math.floor(Number(match[1]) * unit);
}

function nonEmpty(name: string, value: string): string {
  if (value.trim() === '') throw new InputError(`Input '${name}' must not be empty.`);
  return value.trim();
}

export function parseServer(value: string): URL {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new InputError(
      `Input 'server' must be an http(s) URL such as https://cache.example.com; got '${value}'.`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new InputError(`Input 'server' must be an http(s) URL; got protocol '${url.protocol}'.`);
  }
  if (url.protocol === 'http:' && !isLoopbackAddress(url.hostname)) {
    // Anyone on the path could read the cache token and answer the exchange with keys of their own.
    throw new InputError(
      `Input 'server' must be an https:// URL: plain http is allowed only on loopback (127.0.0.0/8, ::1, localhost); got '${url.origin}'.`,
    );
  }
  if (url.username || url.password) {
    throw new InputError(
      `Input 'server' must not carry credentials: Sluice authenticates with the workflow's OIDC token.`,
    );
  }
  // Keep a trailing slash so relative API paths resolve under a server mounted at a sub-path.
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  const v = value.trim().toLowerCase();
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new InputError(
    `Input '${name}' must be one of ${allowed.map((a) => `'${a}'`).join(', ')}; got '${value}'.`,
  );
}

function parseBoolean(name: string, value: string): boolean {
  return oneOf(name, value, ['true', 'false'] as const) === 'true';
}

export function parseRegex(name: string, value: string): string | undefined {
  const source = value.trim();
  if (source === '') return undefined;
  try {
    new RegExp(source);
  } catch (error) {
    throw new InputError(`Input '${name}' is not a valid regular expression: ${(error as Error).message}`);
  }
  return source;
}

export function parseUrls(name: string, value: string): string[] {
  const raw = value.trim() === '' ? [] : value.trim().split(/\s+/);
  return raw.map((u) => {
    try {
      const url = new URL(u);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error();
      return u.replace(/\/+$/, '');
    } catch {
      throw new InputError(
        `Input '${name}' must list http(s) URLs separated by spaces or newlines; '${u}' is not one.`,
      );
    }
  });
}

/** The proxy's address; `host` as it goes into a URL (`[::1]`). */
export function parseListen(value: string): HostPort {
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseHostPort(value));
  } catch {
    throw new InputError(
      `Input 'listen' must be host:port, such as 127.0.0.1:37515 (port 0 picks a free port); got '${value}'.`,
    );
  }
  if (!isLoopbackHost(host)) {
    throw new InputError(
      `Input 'listen' must be a loopback address (127.0.0.1, ::1 or localhost): the proxy holds the cache token; got '${host}'.`,
    );
  }
  return { host: urlHost(host), port };
}

export function parseSeconds(name: string, value: string): number {
  const seconds = Number(value.trim());
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new InputError(`Input '${name}' must be a number of seconds (0 or more); got '${value}'.`);
  }
  return seconds;
}

/**
 * The daemon refuses a drain deadline beyond MAX_DRAIN_DEADLINE_SECONDS (6 h, a hosted job's
 * limit): taken here, such a value would make the post step push nothing, with a message about a
 * timeout.
 */
export function parseDrainTimeout(value: string): number {
  const seconds = parseSeconds(Inputs.DrainTimeout, value);
  if (seconds > MAX_DRAIN_DEADLINE_SECONDS)
    throw new InputError(
      `Input '${Inputs.DrainTimeout}' must be at most ${MAX_DRAIN_DEADLINE_SECONDS} seconds (6 hours); got '${value}'.`,
    );
  return seconds;
}
