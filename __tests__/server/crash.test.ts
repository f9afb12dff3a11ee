/**
 * Crash safety of the embedded default (SQLite + files): the real server process is killed with
 * SIGKILL while real `nix copy` uploads NARs, and again while it writes narinfos; after each
 * restart the database opens, every narinfo points at a whole NAR, no temporary upload file is
 * left, and the retried push completes so that a fresh store substitutes the whole closure.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { makeNixMachine, nix, nixBuild, randomChainExpr, type NixMachine } from '../support/nix.js';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { serveCli, spawnCli, substituteFresh, writeNetrc } from '../support/server.js';

let issuer: OidcIssuer;
let dir: string;
let data: string;
let config: string;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  dir = mkdtempSync(join(tmpdir(), 'sluice-crash-'));
  data = join(dir, 'data');
  config = join(dir, 'sluice.yml');
  const { issuer: url, audience } = issuer.issuerConfig();
  writeFileSync(
    config,
    `data: ${data}\nissuers:\n  - { name: github, issuer: '${url}', audience: ${audience}, allow_insecure_http: true }\n`,
  );
});
afterAll(async () => {
  await issuer?.close();
});

/** `sluice serve` as its own process on the data directory. */
const serve = () => serveCli(config, { cwd: dir });

async function cacheToken(url: string): Promise<string> {
  const res = await fetch(`${url}/_api/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await issuer.sign()}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

/**
 * `nix copy` to the server. One whose server is killed under it gets `timeoutMs`: Nix 2.8 can hang
 * for ever (threads waiting on a futex, no socket left) when its connection dies at the wrong moment.
 */
function copy(
  machine: NixMachine,
  url: string,
  token: string,
  path: string,
  timeoutMs?: number,
): Promise<string> {
  const netrc = writeNetrc(machine.dir, token);
  return nix('nix', ['copy', '--option', 'netrc-file', netrc, '--to', `${url}?compression=none`, path], {
    machine,
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}

const INTERRUPTED_COPY_MS = 60_000;

const tempFiles = () => readdirSync(join(data, 'nars')).filter((name) => name.startsWith('.upload-'));

function narinfoCount(): number {
  if (!existsSync(join(data, 'sluice.db'))) return 0;
  const db = new DatabaseSync(join(data, 'sluice.db'), { readOnly: true });
  try {
    return Number((db.prepare('SELECT count(*) AS n FROM narinfos').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

/** Polls (every 5 ms, at most 60 s) until `ready()`; the kill then follows at once. */
async function until(ready: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error('the moment to kill the server never came');
    await sleep(5);
  }
}

/** The database is intact, and every narinfo's NAR is there, whole: its size and hash as stated. */
function checkConsistent(): number {
  const db = new DatabaseSync(join(data, 'sluice.db'), { readOnly: true });
  try {
    expect(db.prepare('PRAGMA integrity_check').get()).toEqual({ integrity_check: 'ok' });
    const rows = db.prepare('SELECT nar_key, narinfo FROM narinfos').all() as {
      nar_key: string;
      narinfo: string;
    }[];
    for (const row of rows) {
      const info = parseNarInfo(row.narinfo);
      const file = join(data, 'nars', row.nar_key);
      expect(existsSync(file)).toBe(true);
      const bytes = readFileSync(file);
      expect(bytes.length).toBe(info.fileSize);
      expect(createHash('sha256').update(bytes).digest().equals(info.fileHash!.digest)).toBe(true);
    }
    return rows.length;
  } finally {
    db.close();
  }
}

describe('the server killed with SIGKILL', () => {
  it('during NAR uploads and during narinfo writes: restarts clean, and the retried pushes complete', async () => {
    const pusher = makeNixMachine();
    // Big NARs (sent uncompressed) so a kill lands inside an upload; a chain of 8 small paths for
    // the narinfo writes.
    const [big] = await nixBuild(randomChainExpr(4, 24 * 1024 * 1024), pusher);
    const [small] = await nixBuild(randomChainExpr(8, 100), pusher);

    // 1. Killed while receiving a NAR (after at least one path is complete).
    let server = await serve();
    const firstPush = copy(pusher, server.url, await cacheToken(server.url), big!, INTERRUPTED_COPY_MS).catch(
      (e: Error) => e,
    );
    await until(() => narinfoCount() >= 1 && tempFiles().length > 0);
    await server.kill();
    expect(await firstPush).toHaveProperty('message'); // nix copy failed with the server gone
    expect(tempFiles().length).toBeGreaterThan(0); // what the crash left behind

    server = await serve();
    expect((await fetch(`${server.url}/_api/v1/health`)).status).toBe(200);
    expect(tempFiles()).toEqual([]);
    const afterFirstCrash = checkConsistent();
    expect(afterFirstCrash).toBeGreaterThanOrEqual(1);
    expect(afterFirstCrash).toBeLessThan(4);

    // 2. Killed among narinfo writes.
    const before = narinfoCount();
    const secondPush = copy(
      pusher,
      server.url,
      await cacheToken(server.url),
      small!,
      INTERRUPTED_COPY_MS,
    ).catch((e: Error) => e);
    await until(() => narinfoCount() >= before + 3);
    await server.kill();
    await secondPush;

    // 3. Restarted: consistent again, and both pushes, retried, complete.
    server = await serve();
    expect(tempFiles()).toEqual([]);
    checkConsistent();
    const token = await cacheToken(server.url);
    await copy(pusher, server.url, token, big!);
    await copy(pusher, server.url, token, small!);
    expect(checkConsistent()).toBe(12);
    for (const top of [big!, small!]) {
      const closure = (await nix('nix-store', ['-qR', top], { machine: pusher })).trim().split('\n');
      const fresh = await substituteFresh(server, top, await readToken());
      expect(fresh.closure).toEqual([...closure].sort());
    }
    await server.kill();
  }, 300_000);
});

/** A read token from the CLI, as an operator would make one (same data directory). */
async function readToken(): Promise<string> {
  const child = spawnCli(['token', 'create', '--read', 'acme/*', '--config', config], { cwd: dir });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.resume();
  const [code] = (await once(child, 'exit')) as [number];
  expect(code).toBe(0);
  return stdout.trim();
}
