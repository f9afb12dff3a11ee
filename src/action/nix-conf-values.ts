/**
 * Every value the Action writes into a nix.conf, checked against a strict pattern first. nix.conf
 * has no quoting: a newline starts a new setting (a `post-build-hook` runs as the Nix daemon's
 * user), `#` starts a comment, whitespace splits lists. So a value from the server (its public
 * keys) or from the runner (RUNNER_TEMP) that does not look exactly as expected is refused, with
 * an error naming it, rather than escaped.
 */

export class NixConfValueError extends Error {}

/** Key names as Nix tools make them (`cache.example.com-1`); the key is 32 bytes of ed25519. */
const PUBLIC_KEY = /^([A-Za-z0-9][A-Za-z0-9._+@-]{0,127}):([A-Za-z0-9+/]{43}=)$/;
/** Our proxy's URL: a loopback host, a port and the job's secret path (base64url). */
const PROXY_URL = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):([0-9]{1,5})\/[A-Za-z0-9_-]{32,128}$/;
/** An absolute path of characters nix.conf and sh pass through unchanged. */
const SAFE_PATH = /^\/[A-Za-z0-9._+@=,:%/-]*$/;

/** Shown in errors: enough to recognise the value, never a whole hostile blob. */
function shown(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

/** A Nix public key `name:base64(32 bytes)`, as `nix-store --generate-binary-cache-key` writes it. */
export function checkPublicKey(value: string): string {
  const match = PUBLIC_KEY.exec(value);
  const bytes = match ? Buffer.from(match[2]!, 'base64') : undefined;
  if (!match || bytes!.length !== 32 || bytes!.toString('base64') !== match[2]) {
    throw new NixConfValueError(
      `${shown(value)} is not a Nix public key (name:base64 of a 32-byte ed25519 key)`,
    );
  }
  return value;
}

export function checkProxyUrl(value: string): string {
  const match = PROXY_URL.exec(value);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new NixConfValueError(
      `${shown(value)} is not a loopback proxy URL of the form http://127.0.0.1:<port>/<secret>`,
    );
  }
  return value;
}

export function checkPath(value: string, what: string): string {
  if (!SAFE_PATH.test(value) || value.split('/').includes('..')) {
    throw new NixConfValueError(
      `${what} ${shown(value)} cannot go into nix.conf: it must be an absolute path of letters, digits and ._+@=,:%/- only (check RUNNER_TEMP)`,
    );
  }
  return value;
}
