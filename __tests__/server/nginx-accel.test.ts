/**
 * The operator docs' single-server nginx example (docs/operations.md, "nginx sends the NAR files"),
 * as written, in front of a server with `x_accel_redirect`: Nix pushes through it and substitutes
 * directly and through a job's proxy; the NAR bytes come from nginx, never through the server,
 * and only after the server's checks. The files' location answers no client.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTokenExchangeResponse, TOKEN_EXCHANGE_PATH } from '../../src/contracts/server-api.js';
import { githubClaims } from '../support/oidc-issuer.js';
import { nginxExample, startNginx, type RunningNginx } from '../support/nginx.js';
import { makeNixMachine, nix, nixBuild, randomChainExpr } from '../support/nix.js';
import { startTestServer, substituteFresh, writeNetrc, type TestServer } from '../support/server.js';
import { startTestDaemon } from '../proxy/helpers.js';
import { hashPart } from '../action/support.js';

const PREFIX = '/_sluice_nars/';

let server: TestServer;
let nginx: RunningNginx;
let url: string;
let data: string;
let top: string;
let reader: string;

/** What the server counted as NAR bytes it sent itself. */
async function bytesOut(): Promise<number> {
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^sluice_bytes_out_total (\d+)/m.exec(metrics)?.[1] ?? 0);
}

/** The URL of `path`'s NAR file as the server's narinfo names it. */
async function narUrl(path: string): Promise<string> {
  const narinfo = await fetch(`${url}/${hashPart(path)}.narinfo`, {
    headers: { authorization: `Bearer ${reader}` },
  });
  expect(narinfo.status).toBe(200);
  return /^URL: (\S+)$/m.exec(await narinfo.text())![1]!;
}

beforeAll(async () => {
  data = join(mkdtempSync(join(tmpdir(), 'sluice-accel-')), 'data');
  server = await startTestServer({
    dataDir: data,
    yaml: `storage:\n  blobs:\n    type: fs\n    x_accel_redirect: ${PREFIX}\n`,
  });
  // The doc's example (the one with X-Accel) with the test's addresses. Its workers read the NAR
  // files, which lie under the tests' private temporary directory.
  nginx = await startNginx(
    (port) =>
      nginxExample('X-Sluice-Accel', [
        ['listen 443 ssl http2;', `listen 127.0.0.1:${port};`],
        ['server 127.0.0.1:8080;', `server ${new URL(server.url).host};`],
        ['alias /var/lib/sluice/nars/;', `alias ${join(data, 'nars')}/;`],
      ]),
    'user root;',
  );
  url = nginx.url;
  // Pushed through nginx by Nix itself, as a CI job without the Action would.
  const pusher = makeNixMachine();
  const netrc = writeNetrc(pusher.dir, await server.ciToken());
  [top] = (await nixBuild(randomChainExpr(3, 2 * 1024 * 1024), pusher)) as [string];
  await nix('nix', ['copy', '--option', 'netrc-file', netrc, '--to', `${url}?compression=zstd`, top], {
    machine: pusher,
  });
  reader = await server.readToken(['acme/*']);
});
afterAll(async () => {
  nginx?.close();
  await server?.close();
});

it('Nix substitutes through nginx: nginx sends the files, the server sends no NAR byte', async () => {
  const before = await bytesOut();
  const { closure } = await substituteFresh({ url, publicKey: server.publicKey }, top, reader);
  expect(closure).toHaveLength(3);
  expect(await bytesOut()).toBe(before);
});

it("a job's proxy hands Nix links that nginx serves, after the server checked them", async () => {
  const exchange = await fetch(`${url}${TOKEN_EXCHANGE_PATH}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await server.issuer.sign(githubClaims())}` },
  });
  const grant = parseTokenExchangeResponse(await exchange.text());
  const daemon = await startTestDaemon({
    server: url,
    token: grant.token,
    tokenExpiresAt: grant.expiresAt,
    read: grant.read,
    write: null,
  });
  try {
    const before = await bytesOut();
    const { closure } = await substituteFresh({ url: daemon.url, publicKey: server.publicKey }, top);
    expect(closure).toHaveLength(3);
    expect(await bytesOut()).toBe(before);
  } finally {
    await daemon.close();
  }
});

it('a NAR GET through nginx: the file with the server headers; refused without a token; the files location answers no client', async () => {
  const nar = await narUrl(top);
  const file = readFileSync(join(data, 'nars', nar.slice('nar/'.length)));
  const res = await fetch(`${url}/${nar}`, { headers: { authorization: `Bearer ${reader}` } });
  expect([res.status, res.headers.get('content-type'), res.headers.get('cache-control')]).toEqual([
    200,
    'application/x-nix-nar',
    'private, max-age=31536000, immutable',
  ]);
  expect(Buffer.from(await res.arrayBuffer()).equals(file)).toBe(true);

  // Without a token only public slices are read: this NAR is in none.
  const anonymous = await fetch(`${url}/${nar}`);
  expect(anonymous.status).toBe(404);
  expect((await anonymous.arrayBuffer()).byteLength).toBeLessThan(1000);

  const forged = await fetch(`${url}/${nar}?sig=AAAA.AAAA`);
  expect([forged.status, await forged.text()]).toEqual([
    403,
    'signed NAR link has a bad signature (altered, or signed with another key)\n',
  ]);

  const direct = await fetch(`${url}${PREFIX}${nar.slice('nar/'.length)}`, {
    headers: { authorization: `Bearer ${reader}` },
  });
  expect(direct.status).toBe(404);
  expect((await direct.arrayBuffer()).byteLength).toBeLessThan(1000);
});

it('straight to the server: the bytes from the server itself, unless the request says nginx sends them', async () => {
  const nar = await narUrl(top);
  const key = nar.slice('nar/'.length);
  const headers = { authorization: `Bearer ${reader}` };
  const before = await bytesOut();
  const plain = await fetch(`${server.url}/${nar}`, { headers });
  const body = Buffer.from(await plain.arrayBuffer());
  expect([plain.status, plain.headers.get('x-accel-redirect')]).toEqual([200, null]);
  expect(body.equals(readFileSync(join(data, 'nars', key)))).toBe(true);
  expect((await bytesOut()) - before).toBe(body.length);

  const marked = await fetch(`${server.url}/${nar}`, { headers: { ...headers, 'x-sluice-accel': 'on' } });
  expect([
    marked.status,
    marked.headers.get('x-accel-redirect'),
    (await marked.arrayBuffer()).byteLength,
  ]).toEqual([200, `${PREFIX}${key}`, 0]);
  // Checked first: without a right to it, no redirect.
  const refused = await fetch(`${server.url}/${nar}`, { headers: { 'x-sluice-accel': 'on' } });
  expect([refused.status, refused.headers.get('x-accel-redirect')]).toEqual([404, null]);
});
