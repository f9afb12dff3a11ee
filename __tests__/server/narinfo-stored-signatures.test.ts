/**
 * Issue 19, finding 8: a narinfo is signed once, when it is stored, so lookups (single or batched)
 * cost no signing however many distinct narinfos they ask for. The signature is stored with the
 * public key that made it: after a key change, the server signs such narinfos with its new key.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { narInfoFingerprint, parsePublicKey, verifyFingerprint } from '../../src/nix/signing.js';
import { PUBLIC_KEY_FILE, SIGNING_KEY_FILE } from '../../src/server/signing-key.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  pushRaw,
  startTestServer,
  substituteFresh,
  type NarUpload,
  type TestServer,
} from '../support/server.js';

let server: TestServer;
let upload: NarUpload;
let reader: string;

beforeAll(async () => {
  server = await startTestServer();
  upload = await narUploadFor((await nixBuild(randomChainExpr(1, 2000)))[0] as string);
  expect(await pushRaw(server.url, await server.ciToken(), upload)).toEqual([201, 201]);
  reader = await server.readToken(['acme/*']);
});
afterAll(async () => {
  await server?.close();
});

function database(dataDir: string): DatabaseSync {
  return new DatabaseSync(join(dataDir, 'sluice.db'));
}

async function lookups(target: TestServer): Promise<[string, string]> {
  const headers = { authorization: `Bearer ${reader}` };
  const single = await (await fetch(`${target.url}/${upload.hashPart}.narinfo`, { headers })).text();
  const batch = (await (
    await fetch(`${target.url}/_api/v1/narinfos`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ hashParts: [upload.hashPart] }),
    })
  ).json()) as { narinfos: Record<string, string> };
  return [single, batch.narinfos[upload.hashPart]!];
}

describe('narinfo signatures', () => {
  it('are stored with the narinfo and the key that made them, and served from there', async () => {
    const db = database(server.dataDir);
    try {
      const row = db
        .prepare('SELECT narinfo, signed_by FROM narinfos WHERE hash_part = ?')
        .get(upload.hashPart) as {
        narinfo: string;
        signed_by: string;
      };
      expect(row.signed_by).toBe(server.publicKey);
      const stored = parseNarInfo(row.narinfo);
      expect(stored.sigs).toHaveLength(1);
      expect(
        verifyFingerprint(narInfoFingerprint(stored), stored.sigs[0]!, [parsePublicKey(server.publicKey)]),
      ).toBe(true);
      expect(await lookups(server)).toEqual([row.narinfo, row.narinfo]);

      // A lookup does not sign: what is stored is what is served, even a signature it would not make.
      const marker = `${server.publicKey.split(':')[0]}:${Buffer.alloc(64, 7).toString('base64')}`;
      const tampered = row.narinfo.replace(/^Sig: .*$/m, `Sig: ${marker}`);
      db.prepare('UPDATE narinfos SET narinfo = ? WHERE hash_part = ?').run(tampered, upload.hashPart);
      expect(await lookups(server)).toEqual([tampered, tampered]);
      db.prepare('UPDATE narinfos SET narinfo = ? WHERE hash_part = ?').run(row.narinfo, upload.hashPart);
    } finally {
      db.close();
    }
  });

  it('after the signing key is replaced, narinfos signed by the old key are served signed by the new one', async () => {
    const oldKey = server.publicKey;
    const { dataDir } = server;
    await server.close();
    rmSync(join(dataDir, SIGNING_KEY_FILE));
    rmSync(join(dataDir, PUBLIC_KEY_FILE));
    server = await startTestServer({ dataDir });
    expect(server.publicKey).not.toBe(oldKey);
    // The same name (it comes from the host), another key: the stored key tells them apart.
    expect(server.publicKey.split(':')[0]).toBe(oldKey.split(':')[0]);
    reader = await server.readToken(['acme/*']);

    const [single, batch] = await lookups(server);
    expect(batch).toBe(single);
    const served = parseNarInfo(single);
    expect(served.sigs).toHaveLength(1);
    expect(
      verifyFingerprint(narInfoFingerprint(served), served.sigs[0]!, [parsePublicKey(server.publicKey)]),
    ).toBe(true);
    const { closure } = await substituteFresh(server, upload.storePath, reader);
    expect(closure).toEqual([upload.storePath]);
  });
});
