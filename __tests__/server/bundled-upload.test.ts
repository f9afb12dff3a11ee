/**
 * The bundled server (dist/cli, as `npx sluice serve` runs it) verifies uploads on the worker
 * bundle beside it (dist/verify-worker): a NAR named by its NarHash is stored, one whose name lies
 * is refused, both decided by the worker.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { Hash } from '../../src/nix/hash.js';
import { createCompressor } from '../../src/nix/nar.js';
import { regularFileNar } from '../support/nar.js';
import { githubClaims, startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { buildActionBundles, NODE24 } from '../support/runner.js';

describe('the bundled server', () => {
  let issuer: OidcIssuer;
  let child: ChildProcess;
  let url: string;

  beforeAll(async () => {
    issuer = await startOidcIssuer();
    const dir = mkdtempSync(join(tmpdir(), 'sluice-bundled-'));
    const { name, issuer: issuerUrl, audience } = issuer.issuerConfig('github');
    const config = join(dir, 'sluice.yml');
    writeFileSync(
      config,
      `issuers:\n  - { name: ${name}, issuer: '${issuerUrl}', audience: '${audience}', allow_insecure_http: true }\n`,
    );
    const cli = join(buildActionBundles(), 'cli', 'index.js');
    child = spawn(
      NODE24,
      [cli, 'serve', '--listen', '127.0.0.1:0', '--data', join(dir, 'data'), '--config', config],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, NODE_OPTIONS: '' },
      },
    );
    let banner = '';
    url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        banner += chunk;
        const found = /serving the cache at (http:\/\/\S+)\n/.exec(banner);
        if (found) resolve(found[1]!);
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}: ${banner}`)));
    });
    // Bundling every entry point takes minutes on a busy machine (once per source tree).
  }, 600_000);
  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await issuer?.close();
  });

  it('stores a NAR that hashes to its name and refuses one that does not', async () => {
    const exchange = await fetch(`${url}/_api/v1/token`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await issuer.sign(githubClaims())}` },
    });
    expect(exchange.status).toBe(200);
    const { token } = (await exchange.json()) as { token: string };
    const nar = regularFileNar(randomBytes(1024 * 1024));
    const file = await buffer(Readable.from([nar]).pipe(createCompressor('zstd')));
    const upload = (narHash: Hash) =>
      fetch(`${url}/_api/v1/nar/${narHash.nix32}.nar.zst`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}` },
        body: new Uint8Array(file),
      });

    const stored = await upload(Hash.of('sha256', nar));
    expect(stored.status).toBe(201);
    const answer = (await stored.json()) as { file_hash: string; nar_size: number };
    expect(Hash.parse(answer.file_hash).equals(Hash.of('sha256', file))).toBe(true);
    expect(answer.nar_size).toBe(nar.length);

    const lying = Hash.of('sha256', Buffer.from('another NAR'));
    const refused = await upload(lying);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toBe(
      `NAR hashes to ${Hash.of('sha256', nar).toString()}, not to ${lying.toString()} as its name says\n`,
    );
  });
});
