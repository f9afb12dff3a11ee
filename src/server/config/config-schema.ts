/** The server's configuration as the code uses it: types, defaults, and the error a bad one gets. */
import { DEFAULT_AUDIENCE } from '../../contracts/server-api.js';
import type { RateLimits } from './rate-limits.js';
import {
  DEFAULT_GC_GRACE_SECONDS,
  DEFAULT_GC_INTERVAL_SECONDS,
  type PullRequestSettings,
  type RetentionPolicy,
} from './retention-config.js';
import type { BlobsConfig, DatabaseConfig, KeysConfig } from './storage-config.js';
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from './upload-limits.js';

export interface Listen {
  host: string;
  port: number;
}

export interface IssuerConfig {
  /** The name rules use to refer to this issuer (`issuer: github`). */
  name: string;
  /** The exact `iss` claim of its tokens. */
  issuer: string;
  /** The `aud` claim its tokens must carry. */
  audience: string;
  /** Where its signing keys are; default: OIDC discovery at `<issuer>/.well-known/openid-configuration`. */
  jwksUri?: string;
  /** Accept `http://` issuer and JWKS URLs: only for tests on loopback. */
  allowInsecureHttp: boolean;
}

/** A rule matches a token when every listed claim matches one of its globs. */
export interface Rule {
  /** The configured issuer's name; absent only when a single issuer is configured. */
  issuer?: string;
  /** Claim name → globs (`*` matches any run of characters); any one of them may match. */
  claims: Record<string, string[]>;
}

export interface SliceConfig {
  /** A slice name, a pattern with `*` (read-only slices), or a template such as `${repository}`. */
  name: string;
  /** Readable by anyone, without a token. */
  public: boolean;
  read: Rule[];
  write: Rule[];
  /** Overrides the server-wide retention for this slice. */
  retention?: RetentionPolicy;
  /** Same-repository pull-request jobs write `<name>/pr-<number>` (docs/retention.md). */
  pullRequests?: PullRequestSettings;
}

export interface Config {
  listen: Listen;
  /** The data directory, as written (relative paths are relative to the current directory). */
  data: string;
  /** Lifetime of the cache tokens issued by the OIDC exchange. */
  tokenTtlSeconds: number;
  /** The longest a read token (`sluice token create`) may live; older ones are refused. */
  maxReadTokenTtlSeconds: number;
  /** Largest NAR accepted, in bytes: the upload and the NAR inside it. */
  maxNarSize: number;
  /** Bounds on what one upload may cost: inflation, decoder memory, concurrency, idle bodies. */
  uploads: UploadLimits;
  /** The URL clients should use for the cache, when it differs from the listen address (reverse proxy). */
  publicUrl?: string;
  /** Per client address: token exchanges and failed authentications. */
  rateLimits: RateLimits;
  /** Reverse proxies (addresses, CIDR ranges) whose X-Forwarded-For names the client. */
  trustProxy: string[];
  issuers: IssuerConfig[];
  /** The configured slices; absent means the default policy (one slice per repository). */
  slices?: SliceConfig[];
  /** Where NAR files go: `nars/` in the data directory, or a bucket. */
  blobs: BlobsConfig;
  /** PostgreSQL; absent means SQLite in the data directory. */
  database?: DatabaseConfig;
  /** Key files; a key not named is kept (and created) in the data directory. */
  keys: KeysConfig;
  /** Server-wide retention (each slice may override it); empty = keep paths forever. */
  retention: RetentionPolicy;
  /** How often the server collects garbage (seconds). */
  gcIntervalSeconds: number;
  /** Nothing read, pushed or uploaded this recently is removed (seconds); also the orphans' age. */
  gcGraceSeconds: number;
}

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
export const DEFAULT_MAX_NAR_SIZE = 10 * 1024 ** 3;

export function defaultConfig(): Config {
  return {
    listen: { host: '127.0.0.1', port: 8080 },
    data: './sluice-data',
    tokenTtlSeconds: 3600,
    maxReadTokenTtlSeconds: 90 * 86400,
    maxNarSize: DEFAULT_MAX_NAR_SIZE,
    rateLimits: {
      tokenExchanges: { count: 300, periodSeconds: 60 },
      failedAuth: { count: 30, periodSeconds: 60 },
    },
    trustProxy: [],
    uploads: { ...DEFAULT_UPLOAD_LIMITS },
    issuers: [
      { name: 'github', issuer: GITHUB_ISSUER, audience: DEFAULT_AUDIENCE, allowInsecureHttp: false },
    ],
    blobs: { type: 'fs' },
    keys: {},
    retention: {},
    gcIntervalSeconds: DEFAULT_GC_INTERVAL_SECONDS,
    gcGraceSeconds: DEFAULT_GC_GRACE_SECONDS,
  };
}

export { ConfigError } from './config-error.js';
