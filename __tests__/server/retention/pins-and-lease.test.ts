/**
 * Pins through `POST /_api/v1/pins` (the Action's daemon calls it with its cache token): only into
 * the token's write slice, bad requests named and refused, a pin's closure outliving max_age until
 * the pin expires. And the lease: while another replica collects, a collection does nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { SqliteMetadataStore } from '../../../src/server/storage/sqlite-metadata-store.js';
import { nixBuild, randomChainExpr } from '../../support/nix.js';
import { DAY, TestClock, nixCopy, sliceEntries } from '../../support/retention.js';
import { startTestServer, type TestServer } from '../../support/server.js';

const clock = new TestClock(Date.now() + DAY);
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ clock: clock.now, yaml: 'retention: { max_age: 30d }\n' });
});
afterAll(async () => {
  await server?.close();
});

async function pin(token: string, body: unknown): Promise<[number, string]> {
  const res = await fetch(`${server.url}/_api/v1/pins`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return [res.status, await res.text()];
}

describe('pins', () => {
  it('keep a closure past max_age until they expire; bad requests change nothing', async () => {
    const token = await server.ciToken();
    const [top] = await nixBuild(randomChainExpr(3, 300));
    await nixCopy(server.url, token, [top as string]);

    expect(await pin(await server.readToken(['acme/app']), { name: 'v1', paths: [top] })).toEqual([
      403,
      expect.stringContaining('grants no write slice'),
    ]);
    expect(await pin(token, { name: 'bad name', paths: [top] })).toEqual([
      400,
      expect.stringContaining('pin name'),
    ]);
    expect(await pin(token, { name: 'v1', paths: ['/tmp/x'] })).toEqual([
      400,
      expect.stringContaining('paths[0]'),
    ]);
    expect(await pin(token, { name: 'v1', paths: [top], ttl: 'forever' })).toEqual([
      400,
      expect.stringContaining('ttl'),
    ]);
    const absent = `/nix/store/${'0'.repeat(32)}-absent`;
    expect(await pin(token, { name: 'v1', paths: [top, absent] })).toEqual([
      400,
      expect.stringContaining(`not in slice 'acme/app' (push them first): ${absent}`),
    ]);
    const meta = new SqliteMetadataStore(join(server.dataDir, 'sluice.db'));
    try {
      expect(await meta.listPins()).toEqual([]);
      const [status, body] = await pin(token, { name: 'v1', paths: [top], ttl: '60d' });
      expect([status, JSON.parse(body)]).toEqual([
        201,
        {
          slice: 'acme/app',
          name: 'v1',
          paths: 1,
          expires_at: new Date(clock.time + 60 * DAY).toISOString(),
        },
      ]);

      // 40 days on: past max_age, the pinned closure stays.
      clock.set(clock.time + 40 * DAY);
      await server.collectGarbage();
      expect(await sliceEntries(server, 'acme/app')).toHaveLength(3);
      // 70 days on: the pin has expired, it and the closure go.
      clock.set(clock.time + 30 * DAY);
      const report = await server.collectGarbage();
      expect(report.expiredPins).toEqual([{ slice: 'acme/app', name: 'v1' }]);
      expect(report.slices[0]?.removed).toEqual({ age: { paths: 3, bytes: expect.any(Number) } });
      expect(await meta.listPins()).toEqual([]);
    } finally {
      await meta.close();
    }
  });

  it('one collector at a time: a lease held by another replica makes a run skip', async () => {
    const meta = new SqliteMetadataStore(join(server.dataDir, 'sluice.db'));
    try {
      const at = new Date(clock.time);
      expect(await meta.acquireLease('gc', 'replica-2', new Date(clock.time + 60_000), at)).toBe(true);
      expect((await server.collectGarbage()).skipped).toMatch(/another collector is running/);
      await meta.releaseLease('gc', 'replica-2');
      expect((await server.collectGarbage()).skipped).toBeUndefined();
      // An expired lease is taken over.
      await meta.acquireLease('gc', 'replica-2', new Date(clock.time - 1), new Date(clock.time - 60_000));
      expect((await server.collectGarbage()).skipped).toBeUndefined();
    } finally {
      await meta.close();
    }
  });
});
