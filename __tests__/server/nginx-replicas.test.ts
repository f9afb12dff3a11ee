/**
 * The operator docs' nginx example, as written in docs/operations.md, in front of two replicas on
 * S3 + PostgreSQL: Nix pushes and substitutes through it, and with one replica gone the other
 * answers through the same URL.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { makeNixMachine, nix, nixBuild, randomChainExpr } from '../support/nix.js';
import { sharedBackends } from '../support/backends.js';
import { startTestServer, substituteFresh, writeNetrc, type TestServer } from '../support/server.js';
import { hashPart } from '../action/support.js';

const NGINX = '/usr/sbin/nginx';
const DOC = fileURLToPath(new URL('../../docs/operations.md', import.meta.url));

let a: TestServer;
let b: TestServer;
let aClosed = false;
let nginx: ChildProcess;
let url: string;

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** The doc's example with its addresses replaced by the test's; fails if the doc no longer has them. */
function configFromDoc(replicas: string[], port: number): string {
  const block = /```nginx\n([\s\S]*?)```/.exec(readFileSync(DOC, 'utf8'))?.[1];
  if (!block) throw new Error('docs/operations.md has no ```nginx block');
  const replacements: [string, string][] = [
    ['10.0.0.11:8080', replicas[0]!],
    ['10.0.0.12:8080', replicas[1]!],
    ['listen 443 ssl http2;', `listen 127.0.0.1:${port};`],
  ];
  let config = block;
  for (const [from, to] of replacements) {
    if (!config.includes(from)) throw new Error(`the nginx example no longer contains '${from}'`);
    config = config.replace(from, to);
  }
  return config;
}

beforeAll(async () => {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} not found: apt-get install -y nginx-light`);
  const shared = await sharedBackends();
  [a, b] = await Promise.all([
    startTestServer({ yaml: shared.yaml }),
    startTestServer({ yaml: shared.yaml }),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nginx-'));
  mkdirSync(join(dir, 'temp'));
  const port = await freePort();
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((name) => `${name}_temp_path ${join(dir, 'temp', name)};`)
    .join(' ');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  ${temp}
  ${configFromDoc([new URL(a.url).host, new URL(b.url).host], port)}
}
`,
  );
  nginx = spawn(
    NGINX,
    ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    {
      stdio: 'ignore',
    },
  );
  url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (nginx.exitCode !== null)
      throw new Error(`nginx exited: ${readFileSync(join(dir, 'error.log'), 'utf8')}`);
    const ok = await fetch(`${url}/nix-cache-info`).then(
      (res) => res.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(100);
  }
  throw new Error('nginx did not answer');
});
afterAll(async () => {
  nginx?.kill('SIGTERM');
  await Promise.all([aClosed ? undefined : a?.close(), b?.close()]);
});

it('Nix pushes and substitutes through nginx; with one replica stopped the other answers', async () => {
  const cache = { url, publicKey: a.publicKey };
  const pusher = makeNixMachine();
  const netrc = writeNetrc(pusher.dir, await a.ciToken());
  const [top] = await nixBuild(randomChainExpr(3, 6 * 1024 * 1024), pusher);
  await nix('nix', ['copy', '--option', 'netrc-file', netrc, '--to', `${url}?compression=zstd`, top!], {
    machine: pusher,
  });
  const reader = await a.readToken(['acme/*']);
  expect((await substituteFresh(cache, top!, reader)).closure).toHaveLength(3);

  await a.close();
  aClosed = true;
  const lookup = await fetch(`${url}/${hashPart(top!)}.narinfo`, {
    headers: { authorization: `Bearer ${reader}` },
  });
  expect(lookup.status).toBe(200);
  expect((await substituteFresh(cache, top!, reader)).closure).toHaveLength(3);
});
