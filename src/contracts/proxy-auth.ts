/**
 * The per-job credentials between the Action and its proxy: every cache route lives under a secret
 * path prefix (Nix sends it as part of the substituter URL, which only a 0600 file holds), and
 * every control route needs a second secret as `Authorization: Bearer` (read by the post-build hook
 * and the post step from a 0600 file). The daemon checks them in src/proxy/runtime/request-gate.ts.
 */

export interface ProxyAuth {
  /** The first path segment of every cache route: `/<cachePrefix>/<hash>.narinfo`. */
  cachePrefix: string;
  /** `Authorization: Bearer <controlSecret>` on every `/_sluice/*` request. */
  controlSecret: string;
}

/** What a per-job secret looks like: URL-safe, at least 192 bits of base64url. */
export const SECRET_PATTERN = /^[A-Za-z0-9_-]{32,128}$/;
