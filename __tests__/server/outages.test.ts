/**
 * A replica on S3 + PostgreSQL when those fail, on a PostgreSQL and a Ceph RGW of this file's own
 * (the shared ones serve other test files meanwhile): a database restart answers requests in
 * flight 503 + Retry-After, never 500, and the Action's proxy retries until its job is green with
 * every path pushed; a stopped object store answers 503 at once and the Action fails open.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Hash } from '../../src/nix/hash.js';
import { regularFileNar } from '../support/nar.js';
import { buildActionBundles, Job } from '../support/runner.js';
import { salt } from '../support/nix.js';
import { rawRequest, startTestServer, type TestServer } from '../support/server.js';
import { sharedBackends, startPrivateServices, type PrivateServices } from '../support/backends.js';
import { derivationExpr, onServer, warningsAbout } from '../action/support.js';

let services: PrivateServices;
let server: TestServer;
let writer: string;
let dist: string;

beforeAll(async () => {
  services = await startPrivateServices();
  const { yaml } = await sharedBackends({ services });
  server = await startTestServer({ yaml });
  writer = await server.ciToken();
  dist = buildActionBundles();
}, 120_000);
afterAll(async () => {
  await server?.close();
  await services?.stop();
});

const auth = () => ({ authorization: `Bearer ${writer}` });

/** What the server logged as unavailable (503) so far. */
const unavailableLogs = () => server.logs.filter((line) => line.includes('"msg":"unavailable"'));

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await condition()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('PostgreSQL restarted', () => {
  it('requests in flight and during the restart get 503 with Retry-After, never 500; then all is served again', async () => {
    const answers: { status: number; retryAfter?: string; text: string }[] = [];
    let stopping = false;
    // Four clients upload small NARs and look narinfos up, over and over, through the restart.
    const client = async () => {
      while (!stopping) {
        const bytes = regularFileNar(randomBytes(4096));
        const put = await rawRequest(server.url, 'PUT', `/nar/${Hash.of('sha256', bytes).nix32}.nar`, {
          headers: { authorization: `Bearer ${writer}` },
          body: bytes,
        });
        const get = await rawRequest(server.url, 'GET', `/${'0'.repeat(32)}.narinfo`, {
          headers: { authorization: `Bearer ${writer}` },
        });
        for (const res of [put, get]) {
          const retryAfter = res.headers['retry-after'] as string | undefined;
          answers.push({ status: res.status, text: res.text, ...(retryAfter ? { retryAfter } : {}) });
        }
      }
    };
    const clients = [client(), client(), client(), client()];
    await until(() => answers.length > 20, 'answers before the restart');
    await services.postgres('restart');
    const afterRestart = answers.length;
    await until(
      () => answers.slice(afterRestart).filter((a) => a.status === 201).length >= 8,
      'uploads to succeed again after the restart',
    );
    stopping = true;
    await Promise.all(clients);

    // Errors (level 50) would be 500s: none, and so no 500 either.
    expect(server.logs.filter((line) => line.includes('"level":50'))).toEqual([]);
    const statuses = new Set(answers.map((a) => a.status));
    expect([...statuses].sort()).toEqual([201, 404, 503]);
    for (const answer of answers.filter((a) => a.status === 503)) {
      expect(answer.retryAfter).toBe('2');
      expect(answer.text).toMatch(/^the database is unavailable( \([A-Z0-9_]+\))?: retry shortly\n$/);
    }
  }, 120_000);

  it('down in the middle of a job’s pushes: the proxy retries the 503s, the job ends green with every path pushed', async () => {
    const tag = salt();
    const expression = `let a = ${derivationExpr('sluice-pg-down-a', tag)}; b = ${derivationExpr('sluice-pg-down-b', tag, ['a'])}; in [ a b ]`;
    const job = new Job({
      dist,
      inputs: { server: server.url, listen: '127.0.0.1:0', 'drain-timeout': '120' },
      idTokenRequest: server.issuer.runner,
    });
    expect((await job.runMain()).exitCode).toBe(0);
    const seen = unavailableLogs().length;
    await services.postgres('down');
    // The post-build hook hands the paths to the proxy, which pushes them while the database is down.
    const built = await job.nixBuild(expression);
    await until(() => unavailableLogs().length > seen, 'a push to be answered 503');
    await services.postgres('up');
    const post = await job.runPost();
    expect(post.exitCode).toBe(0);
    // Lookups while the database was down were answered 503 and reported; no push failed.
    // (The shared store's paths from other test files may be pushed too: only ours are checked.)
    expect(
      warningsAbout(post.warnings, built).filter(
        (warning) => !warning.startsWith('narinfo lookup answered HTTP 503'),
      ),
    ).toEqual([]);
    for (const path of built) expect(await onServer(server, path)).toBe(true);
  }, 180_000);
});

describe('the object store stopped', () => {
  it('NAR reads and uploads answer 503 with Retry-After; the Action fails open and the job stays green', async () => {
    const bytes = regularFileNar(randomBytes(4096));
    const key = `${Hash.of('sha256', bytes).nix32}.nar`;
    const stored = await rawRequest(server.url, 'PUT', `/nar/${key}`, { headers: auth(), body: bytes });
    expect(stored.status).toBe(201);
    await services.objectStore('stop-rgw');
    try {
      const head = await rawRequest(server.url, 'HEAD', `/nar/${key}`, { headers: auth() });
      const get = await rawRequest(server.url, 'GET', `/nar/${key}`, { headers: auth() });
      const other = regularFileNar(randomBytes(4096));
      const put = await rawRequest(server.url, 'PUT', `/nar/${Hash.of('sha256', other).nix32}.nar`, {
        headers: auth(),
        body: other,
      });
      for (const res of [head, get, put]) {
        expect([res.status, res.headers['retry-after']]).toEqual([503, '2']);
      }
      // The cause's code for the client; where the store is (host, port) only in the server's log.
      expect(put.text).toBe('the object store is unavailable (ECONNREFUSED): retry shortly\n');
      const { port } = new URL(services.s3Endpoint);
      expect(
        unavailableLogs().some((line) => line.includes(`ECONNREFUSED`) && line.includes(`:${port}`)),
      ).toBe(true);

      const tag = salt();
      const job = new Job({
        dist,
        inputs: { server: server.url, listen: '127.0.0.1:0', 'drain-timeout': '60' },
        idTokenRequest: server.issuer.runner,
      });
      expect((await job.runMain()).exitCode).toBe(0);
      const built = await job.nixBuild(derivationExpr('sluice-s3-down', tag));
      expect(built).toHaveLength(1);
      const post = await job.runPost();
      expect(post.exitCode).toBe(0);
      // Loud, not silent: the failed push is reported.
      expect(post.warnings.join('\n')).toMatch(/503|unavailable/);
    } finally {
      await services.objectStore('start-rgw');
    }
  }, 180_000);
});
