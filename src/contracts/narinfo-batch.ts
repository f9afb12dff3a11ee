/**
 * The batch narinfo lookup route as server and proxy both know it: where it is, how many hash
 * parts one request may name, and which slices a lookup may ask.
 */
export const NARINFO_BATCH_PATH = '/_api/v1/narinfos';

/** Hash parts per request: far more than Nix has in flight (http-connections, 25 by default). */
export const NARINFO_BATCH_LIMIT = 1000;

/**
 * `GET /_api/v1/narinfos/recent`: the narinfos of the readable slices most recently used (read or
 * pushed), newest first, in the batch answer's form, for the proxy to answer Nix's hits from memory
 * (src/server/cache/recent-narinfos.ts, src/proxy/pull/recent-narinfos.ts). At most this many, and
 * this much narinfo text.
 */
export const RECENT_NARINFOS_PATH = '/_api/v1/narinfos/recent';
export const RECENT_NARINFOS_LIMIT = 10_000;
export const RECENT_NARINFOS_BYTES = 8 * 1024 * 1024;

/**
 * `POST /_api/v1/narinfos/stream`: the batch lookups of one proxy as lines of one long request
 * (src/server/http/narinfo-stream-handler.ts, src/proxy/upstream/narinfo-stream.ts). The server
 * ends a stream at the token's expiry, `lifetimeMs` after it opened, or `idleMs` after its last line.
 */
export const NARINFO_STREAM_PATH = '/_api/v1/narinfos/stream';

export const NARINFO_STREAM_LIMITS = { lifetimeMs: 60_000, idleMs: 10_000 };

/**
 * Which slices a narinfo lookup asks: the union of readable slices (what Nix substitutes from, the
 * default), or only the token's write slice, for a push's "already cached?" check: a path another
 * readable slice holds must still be pushed, so the job's own copy answers by precedence. The batch
 * route takes it as `"scope"` in the body, `GET`/`HEAD /<hash>.narinfo` as `?scope=`.
 */
export type NarInfoLookupScope = 'union' | 'write';
export const NARINFO_LOOKUP_SCOPES: readonly NarInfoLookupScope[] = ['union', 'write'];
