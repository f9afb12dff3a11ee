/** The daemon on its own: config checks, readiness, control endpoints, and deadlines against servers that fail. */
import { afterEach, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { DaemonConfigError, parseDaemonConfig } from '../../src/contracts/daemon-config.js';
import { NIX_CACHE_INFO } from '../../src/proxy/pull/nix-routes.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { refusedUrl as refused, startTestDaemon, type TestDaemon } from './helpers.js';

const TOKEN = 'sluice-test-token-that-must-never-be-logged';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function daemon(config: Record<string, unknown>): Promise<TestDaemon> {
  const d = await startTestDaemon(config);
  cleanups.push(() => d.close());
  return d;
}

/** A TCP server that accepts connections and never answers: a hung cache server. */
async function blackHole(): Promise<string> {
  const sockets: Socket[] = [];
  const server: Server = createTcpServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    sockets.forEach((s) => s.destroy());
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const base = { token: TOKEN, tokenExpiresAt: new Date(Date.now() + 3600_000).toISOString() };

describe('daemon config', () => {
  const auth = { cachePrefix: 'p'.repeat(43), controlSecret: 'c'.repeat(43) };
  const valid = { listen: '127.0.0.1:0', server: 'http://127.0.0.1:1', stateDir: '/tmp/x', auth, ...base };

  it('refuses to listen anywhere but loopback', () => {
    expect(() => parseDaemonConfig({ ...valid, listen: '0.0.0.0:37515' })).toThrow(/not a loopback address/);
    expect(() => parseDaemonConfig({ ...valid, listen: '192.168.1.2:80' })).toThrow(DaemonConfigError);
    expect(parseDaemonConfig({ ...valid, listen: 'localhost:0' }).listen).toBe('localhost:0');
  });

  it('names the bad field', () => {
    expect(() => parseDaemonConfig({ ...valid, server: 'ftp://x' })).toThrow(
      /server 'ftp:\/\/x' must be an http\(s\) URL/,
    );
    expect(() => parseDaemonConfig({ ...valid, push: { enabled: true, filter: '(' } })).toThrow(
      /push.filter/,
    );
    expect(() => parseDaemonConfig({ ...valid, push: { compression: 'lz4' } })).toThrow(
      /push.compression 'lz4'/,
    );
    expect(() => parseDaemonConfig({ ...valid, tokenExpiresAt: 'never' })).toThrow(/tokenExpiresAt 'never'/);
  });

  it('defaults push to off, zstd, cache.nixos.org upstream; accepts an anonymous (null) token', () => {
    const config = parseDaemonConfig({ ...valid, token: null, tokenExpiresAt: null });
    expect(config.token).toBeNull();
    expect(config.push).toEqual({
      enabled: false,
      upstreamCaches: ['https://cache.nixos.org'],
      compression: 'zstd',
      concurrency: 4,
    });
  });
});

describe('daemon', () => {
  it('announces readiness in ready.json, serves nix-cache-info and health', async () => {
    const d = await daemon({ ...base, server: await refused() });
    const ready = JSON.parse(readFileSync(join(d.stateDir, 'ready.json'), 'utf8'));
    expect(ready).toEqual({ pid: process.pid, port: d.port });
    const info = await fetch(`${d.url}/nix-cache-info`);
    expect(await info.text()).toBe(NIX_CACHE_INFO);
    expect(NIX_CACHE_INFO).toContain('Priority: 30');
    const health = await d.control<{ ok: boolean; port: number }>('health');
    expect(health.json).toMatchObject({ ok: true, port: d.port });
  });

  it('rejects bad control requests with a 400 that names the problem', async () => {
    const d = await daemon({ ...base, server: await refused(), push: { enabled: true, upstreamCaches: [] } });
    expect(await d.control('built', { outPaths: ['/tmp/not-in-store'] })).toMatchObject({
      status: 400,
      json: expect.stringMatching(/outPaths\[0\]: path '\/tmp\/not-in-store' is not in the store/),
    });
    expect(await d.control('built', {})).toMatchObject({
      status: 400,
      json: expect.stringMatching(/outPaths or drvPath/),
    });
    expect(await d.control('drain', { deadlineSeconds: -1 })).toMatchObject({ status: 400 });
    const wrongMethod = await fetch(`${d.address}/_sluice/drain`, {
      headers: { authorization: `Bearer ${d.auth.controlSecret}` },
    });
    expect(wrongMethod.status).toBe(405);
  });

  it('answers narinfo lookups with 404 when the server is down, recording the error', async () => {
    const d = await daemon({ ...base, server: await refused() });
    const response = await fetch(`${d.url}/${'0'.repeat(32)}.narinfo`);
    expect(response.status).toBe(404);
    const stats = (await d.control('stats')).json;
    expect(stats.misses).toBe(1);
    expect(stats.errors.join('\n')).toMatch(/narinfo lookup failed: .*ECONNREFUSED/);
  });

  it('drain answers by its deadline when the server hangs, with the rest still queued', async () => {
    const server = await blackHole();
    const [top] = await nixBuild(randomChainExpr(2, 1024));
    const d = await daemon({ ...base, server, push: { enabled: true, upstreamCaches: [] } });
    const started = Date.now();
    const drained = await d.control('drain', { deadlineSeconds: 1, paths: [top] });
    const elapsed = Date.now() - started;
    expect(drained.status).toBe(200);
    expect(drained.json.queued).toBeGreaterThan(0);
    expect(drained.json.pushed.paths).toBe(0);
    // Generous bound: the point is that the drain does not wait for the hung server's timeouts (minutes).
    expect(elapsed).toBeLessThan(20_000);
    const shut = await d.control<{ shuttingDown: boolean }>('shutdown', {});
    expect(shut.json.shuttingDown).toBe(true);
    expect(d.logText()).not.toContain(TOKEN);
  });
});
