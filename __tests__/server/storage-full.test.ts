/**
 * A disk with no room for an upload: the real server process runs under `ulimit -f`, so its writes
 * past 2 MiB fail (EFBIG, as ENOSPC on a full disk). The upload gets 507 naming the cause, never a
 * 400 blaming the client; nothing is left behind; smaller uploads still work; the log says why. A
 * job's proxy stops pushing at the first 507 rather than sending every path to be refused.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTokenExchangeResponse, type ExchangedToken } from '../../src/contracts/server-api.js';
import { Hash } from '../../src/nix/hash.js';
import { nix, nixBuild, randomChainExpr } from '../support/nix.js';
import { startTestDaemon } from '../proxy/helpers.js';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { regularFileNar } from '../support/nar.js';
import { rawRequest, serveCli } from '../support/server.js';

const MAX_FILE_KIB = 2048;

let issuer: OidcIssuer;
let server: Awaited<ReturnType<typeof serveCli>>;
let data: string;
let token: string;
let grant: ExchangedToken;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  const dir = mkdtempSync(join(tmpdir(), 'sluice-full-'));
  data = join(dir, 'data');
  const { issuer: url, audience } = issuer.issuerConfig();
  writeFileSync(
    join(dir, 'sluice.yml'),
    `data: ${data}\nissuers:\n  - { name: github, issuer: '${url}', audience: ${audience}, allow_insecure_http: true }\n`,
  );
  server = await serveCli(join(dir, 'sluice.yml'), { cwd: dir, maxFileKiB: MAX_FILE_KIB });
  const res = await fetch(`${server.url}/_api/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await issuer.sign()}` },
  });
  grant = parseTokenExchangeResponse(await res.text());
  token = grant.token;
});
afterAll(async () => {
  await server?.kill();
  await issuer?.close();
});

const narFiles = () => readdirSync(join(data, 'nars'));

it.each([
  ['by its FileHash, as Nix uploads', (nar: Buffer) => `/nar/${Hash.of('sha256', nar).nix32}.nar`],
  [
    'by its NarHash, as the proxy uploads',
    (nar: Buffer) => `/_api/v1/nar/${Hash.of('sha256', nar).nix32}.nar?file_hash=omit`,
  ],
])('an upload %s that the disk has no room for: 507, nothing kept', async (_how, path) => {
  const before = narFiles();
  const large = regularFileNar(randomBytes(2 * MAX_FILE_KIB * 1024));
  const res = await rawRequest(server.url, 'PUT', path(large), {
    headers: { authorization: `Bearer ${token}` },
    body: large,
  });
  expect([res.status, res.text]).toEqual([507, 'the NAR store is full (EFBIG): nothing was stored\n']);
  expect(narFiles()).toEqual(before);
  expect(server.log()).toContain('"msg":"storage full"');
  expect(server.log()).not.toContain('truncated');

  // What fits is still stored.
  const small = regularFileNar(randomBytes(64 * 1024));
  const stored = await rawRequest(server.url, 'PUT', path(small), {
    headers: { authorization: `Bearer ${token}` },
    body: small,
  });
  expect(stored.status).toBe(201);
  expect(narFiles()).toHaveLength(before.length + 1);
});

it("a job's proxy stops pushing at the first 507: the rest of its paths fail at once, unsent", async () => {
  // Four paths of 3 MiB of random bytes each (zstd cannot shrink them below the 2 MiB limit).
  const [top] = await nixBuild(randomChainExpr(4, 3 * 1024 * 1024));
  const closure = (await nix('nix-store', ['-qR', top!])).trim().split('\n');
  const before = narFiles();
  const refusals = () => server.log().split('"msg":"storage full"').length - 1;
  const refusedBefore = refusals();
  const daemon = await startTestDaemon({
    server: server.url,
    token: grant.token,
    tokenExpiresAt: grant.expiresAt,
    read: grant.read,
    write: grant.write,
    // One upload at a time, so that exactly one reaches the full disk.
    push: { enabled: true, upstreamCaches: [], concurrency: 1 },
  });
  try {
    const stats = (await daemon.control('drain', { deadlineSeconds: 60, paths: [top] })).json;
    expect([stats.pushed.paths, stats.queued, stats.failed.length]).toEqual([0, 0, closure.length]);
    const refused = stats.failed.filter((f) => /HTTP 507 the NAR store is full \(EFBIG\)/.test(f.error));
    const unsent = stats.failed.filter(
      (f) => f.error === 'not pushed: the cache server has no room for uploads (HTTP 507)',
    );
    expect([refused.length, unsent.length]).toEqual([1, closure.length - 1]);
    expect(refusals() - refusedBefore).toBe(1);
    expect(narFiles()).toEqual(before);
    expect(daemon.logText().split('this job pushes nothing more').length - 1).toBe(1);
  } finally {
    await daemon.close();
  }
}, 120_000);
