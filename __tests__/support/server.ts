/**
 * The real Sluice server on 127.0.0.1:0 with a temp data dir, trusting a local OIDC issuer; token
 * helpers (exchanged CI tokens, read tokens) and a netrc writer so real Nix can authenticate.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, type Config } from '../../src/server/config.js';
import { createExchange, loadOrCreateTokenKey, tokenKeyPath } from '../../src/server/exchange/index.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { githubClaims, startOidcIssuer, type Claims, type OidcIssuer } from './oidc-issuer.js';

export interface TestServer extends RunningServer {
  issuer: OidcIssuer;
  config: Config;
  /** Every JSON log line the server wrote. */
  logs: string[];
  /** A cache token from the real exchange, for a GitHub-shaped ID token with these claims. */
  ciToken(claims?: Claims): Promise<string>;
  /** A read-only token, as `sluice token create --read` makes. */
  readToken(read: string[]): Promise<string>;
}

export interface TestServerOptions {
  /** Extra YAML (e.g. `slices:`), parsed by the real config parser; issuers are set to the local one. */
  yaml?: string;
  maxNarSize?: number;
  dataDir?: string;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const issuer = await startOidcIssuer();
  const parsed = parseConfig(options.yaml ?? '', 'test config');
  const config: Config = {
    ...parsed,
    listen: { host: '127.0.0.1', port: 0 },
    data: options.dataDir ?? mkdtempSync(join(tmpdir(), 'sluice-data-')),
    issuers: [issuer.issuerConfig('github')],
    ...(options.maxNarSize ? { maxNarSize: options.maxNarSize } : {}),
  };
  const logs: string[] = [];
  const server = await startServer(config, { logDestination: { write: (line: string) => logs.push(line) } });
  const tokenKey = (await loadOrCreateTokenKey(tokenKeyPath(server.dataDir))).key;
  const exchange = createExchange(config, tokenKey);

  return {
    ...server,
    issuer,
    config,
    logs,
    async ciToken(claims = {}) {
      const idToken = await issuer.sign(githubClaims(claims));
      const res = await fetch(`${server.url}/_api/v1/token`, {
        method: 'POST',
        headers: { authorization: `Bearer ${idToken}` },
      });
      if (res.status !== 200) throw new Error(`token exchange failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { token: string }).token;
    },
    async readToken(read) {
      return (await exchange.createReadToken({ read, ttlSeconds: 600, name: 'test' })).token;
    },
    async close() {
      await server.close();
      await issuer.close();
    },
  };
}

/** A netrc for `machine 127.0.0.1` whose password is the token (Nix 2.8 sends it as Basic auth). */
export function writeNetrc(dir: string, token: string): string {
  const path = join(dir, 'netrc');
  writeFileSync(path, `machine 127.0.0.1\nlogin sluice\npassword ${token}\n`, { mode: 0o600 });
  return path;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Spawns `sluice <args>` from the TypeScript sources with Node 24 (the `node` devDependency), as
 * `npx sluice` runs the bundle: a separate process, its own cwd, real signals. The sources rather
 * than dist/, because dist/ is rebuilt by the lead and may lag behind the code under test.
 */
export function spawnCli(args: string[], options: { cwd: string }): ChildProcessWithoutNullStreams {
  return spawn(
    join(ROOT, 'node_modules/.bin/node'),
    [
      '--experimental-transform-types',
      '--no-warnings',
      '--import',
      join(ROOT, '__tests__/support/ts-loader.mjs'),
      join(ROOT, 'src/entrypoints/cli.ts'),
      ...args,
    ],
    { cwd: options.cwd, env: { ...process.env, NODE_OPTIONS: '' }, stdio: 'pipe' },
  );
}
