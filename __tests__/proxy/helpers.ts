/** Shared by the proxy tests: start the real daemon in-process from a real config file, capture its log. */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { readDaemonConfig } from '../../src/contracts/daemon-config.js';
import { startDaemon, type Daemon } from '../../src/proxy/runtime/daemon-main.js';
import type { DaemonStats as StatsJson } from '../../src/contracts/control-api.js';
import type { Clock } from '../../src/proxy/upstream/clock.js';
import { makeNixMachine, type NixMachine } from '../support/nix.js';

export interface TestDaemon extends Daemon {
  /** The substituter URL Nix gets: the daemon's address and the job's secret path. */
  url: string;
  /** The daemon's address alone (control routes; cache routes here answer 401). */
  address: string;
  auth: { cachePrefix: string; controlSecret: string };
  stateDir: string;
  /** Everything the daemon logged so far. */
  logText(): string;
  control<T = StatsJson>(path: string, body?: unknown): Promise<{ status: number; json: T }>;
}

/**
 * A listening `node:http` server playing the cache server's part, and a reading job's daemon in
 * front of it: for what the daemon does with answers the real server never gives.
 */
export async function startDaemonBefore(server: Server): Promise<TestDaemon> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return startTestDaemon({
    server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    token: 'cache-token-0123456789',
    tokenExpiresAt: new Date(Date.now() + 3600_000).toISOString(),
    read: ['acme/app'],
    write: null,
  });
}

export async function startTestDaemon(
  config: Record<string, unknown>,
  machine?: NixMachine,
  clock?: Clock,
): Promise<TestDaemon> {
  const stateDir = mkdtempSync(join(tmpdir(), 'sluice-proxy-'));
  const configFile = join(stateDir, 'daemon.json');
  const auth = {
    cachePrefix: randomBytes(32).toString('base64url'),
    controlSecret: randomBytes(32).toString('base64url'),
  };
  writeFileSync(
    configFile,
    JSON.stringify({ listen: '127.0.0.1:0', audience: 'sluice', stateDir, auth, ...config }),
    {
      mode: 0o600,
    },
  );
  let log = '';
  const destination = new Writable({
    write(chunk, _encoding, done) {
      log += String(chunk);
      done();
    },
  });
  const daemon = await startDaemon(await readDaemonConfig(configFile), {
    // The daemon's nix commands run in the tests' isolated, offline Nix configuration.
    env: (machine ?? makeNixMachine()).env,
    logDestination: destination,
    ...(clock ? { clock } : {}),
  });
  return {
    ...daemon,
    url: `${daemon.url}/${auth.cachePrefix}`,
    address: daemon.url,
    auth,
    stateDir,
    logText: () => log,
    async control<T>(path: string, body?: unknown) {
      const response = await fetch(`${daemon.url}/_sluice/${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${auth.controlSecret}` },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      let json: unknown = text;
      try {
        json = JSON.parse(text);
      } catch {
        // plain-text error bodies stay text
      }
      return { status: response.status, json: json as T };
    },
  };
}

/** A URL nothing listens on (a port that was just free): connections are refused. */
export async function refusedUrl(): Promise<string> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}
