/**
 * A server whose cache tokens are already expired by the runner's clock (its clock runs behind by
 * more than a token's life, or it is hostile) must not make the daemon refresh in a tight loop:
 * each refresh asks the runner's ID-token endpoint for a new token and the server for an exchange,
 * and a loop would flood both and burn the runner's CPU.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, Secrets } from '../../src/proxy/report/daemon-log.js';
import { Stats } from '../../src/proxy/report/stats.js';
import { TokenKeeper } from '../../src/proxy/upstream/token-keeper.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** The runner's ID-token endpoint and the exchange in one stand-in; counts what it was asked. */
async function standIn(expiresInMs: number) {
  const counts = { idTokens: 0, exchanges: 0 };
  const server = createServer((req, res) => {
    req.resume();
    if (req.url?.startsWith('/idtoken')) {
      counts.idTokens++;
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ value: 'id-token-value' }));
      return;
    }
    counts.exchanges++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        token: `cache-token-${counts.exchanges}`,
        expires_at: new Date(Date.now() + expiresInMs).toISOString(),
        read: ['acme/app'],
        write: 'acme/app',
        public_keys: [],
        cache_url: 'http://127.0.0.1:1',
      }),
    );
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, counts };
}

describe('token refresh against a server whose tokens are already expired', () => {
  it('refreshes once, then waits, and says why in the log', async () => {
    const { url, counts } = await standIn(-3600_000);
    const lines: string[] = [];
    const secrets = new Secrets();
    const keeper = new TokenKeeper(
      { token: 'initial-cache-token', expiresAt: Date.now() - 1000 },
      {
        server: url,
        audience: 'sluice',
        idTokenRequest: { url: `${url}/idtoken`, token: 'request-token-value' },
        secrets,
        stats: new Stats(),
        log: createLogger(secrets, { write: (line: string) => lines.push(line) }),
      },
    );
    keeper.start();
    await sleep(1500);
    keeper.stop();
    expect(counts.exchanges).toBeGreaterThanOrEqual(1);
    expect(counts.exchanges).toBeLessThanOrEqual(2);
    expect(counts.idTokens).toBe(counts.exchanges);
    expect(lines.join('\n')).toContain("already expired by this runner's clock");
  });
});
