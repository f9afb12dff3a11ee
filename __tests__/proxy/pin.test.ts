/**
 * The Action's `pin: NAME` as the daemon does it: after a full drain it pins what the job produced
 * in its write slice through `POST /_api/v1/pins` with its cache token; paths the slice does not
 * hold are skipped; a token without a write slice pins nothing (the server refuses) and says why.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata-store.js';
import { addTinyPaths, makeNixMachine, nixBuild, randomChainExpr } from '../support/nix.js';
import { startStack, type Stack } from './stack.js';
import { startTestDaemon } from './helpers.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

describe('pin from the Action', () => {
  it('pins what the job built, with its closure, once drained', async () => {
    const grant = await stack.cacheToken();
    const daemon = await startTestDaemon(
      {
        server: stack.server.url,
        token: grant.token,
        tokenExpiresAt: grant.expiresAt,
        push: { enabled: true, upstreamCaches: [], compression: 'zstd' },
        write: grant.write,
        pin: { name: 'release-1', ttl: '1y' },
      },
      makeNixMachine(),
    );
    try {
      const [top] = await nixBuild(randomChainExpr(2, 200));
      const stats = await daemon.control('drain', { deadlineSeconds: 60, paths: [top] });
      expect(stats.status).toBe(200);
      expect(stats.json.pin).toEqual({ name: 'release-1', paths: 1 });
      const meta = new SqliteMetadataStore(join(stack.server.dataDir, 'sluice.db'));
      try {
        const [pin] = await meta.listPins('acme/app');
        expect(pin).toMatchObject({ name: 'release-1', storePaths: [top] });
        expect(+pin!.expiresAt! - Date.now()).toBeGreaterThan(364 * 86400_000);
      } finally {
        await meta.close();
      }
    } finally {
      await daemon.close();
    }
  });

  it('reports why nothing was pinned when the token cannot write', async () => {
    const token = await stack.server.readToken(['acme/app']);
    const daemon = await startTestDaemon({
      server: stack.server.url,
      token,
      tokenExpiresAt: new Date(Date.now() + 600_000).toISOString(),
      push: { enabled: true, upstreamCaches: [] },
      pin: { name: 'release-2' },
    });
    try {
      const [path] = await addTinyPaths(1, 'pin-readonly');
      const stats = await daemon.control('drain', { deadlineSeconds: 30, paths: [path] });
      expect(stats.json.pin).toEqual({
        name: 'release-2',
        paths: 0,
        error: expect.stringContaining('403'),
      });
    } finally {
      await daemon.close();
    }
  });
});
