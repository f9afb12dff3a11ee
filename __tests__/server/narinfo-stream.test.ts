/**
 * `POST /_api/v1/narinfos/stream`: batch lookups as lines of one request, answered in order with
 * exactly the batch route's answers (the same access rules: another repository's path is never
 * answered); a bad line gets an error line naming the problem and ends the stream; the stream ends
 * when its token expires, since the token is checked only when it opens.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { NARINFO_STREAM_PATH } from '../../src/contracts/narinfo-batch.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import { narUploadFor, pushRaw, startTestServer, type TestServer } from '../support/server.js';

const YAML = `
token_ttl: 3s
slices:
  - name: "\${repository}"
    read: [ {} ]
    write:
      - { event_name: push }
`;
const APP = { repository: 'acme/app', repository_id: '1001' };
const OTHER = { repository: 'other/thing', repository_id: '3001', repository_owner_id: '7001' };
const ABSENT = '0'.repeat(32);

let server: TestServer;
let hash: { app: string; other: string };

beforeAll(async () => {
  server = await startTestServer({ yaml: YAML });
  const [app, other] = await Promise.all(
    [1, 2].map(async () => narUploadFor((await nixBuild(randomChainExpr(1, 300)))[0] as string)),
  );
  expect(await pushRaw(server.url, await server.ciToken(APP), app!)).toEqual([201, 201]);
  expect(await pushRaw(server.url, await server.ciToken(OTHER), other!)).toEqual([201, 201]);
  hash = { app: app!.hashPart, other: other!.hashPart };
});
afterAll(async () => {
  await server?.close();
});

/** An open stream: write lines, read the answer's lines as they come, see when it ends. */
function openStream(token: string | null): {
  req: ClientRequest;
  lines(count: number): Promise<unknown[]>;
  ended: Promise<{ status: number; text: string }>;
} {
  const { hostname, port } = new URL(server.url);
  const req = request({
    hostname,
    port,
    method: 'POST',
    path: NARINFO_STREAM_PATH,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  req.flushHeaders();
  let text = '';
  let notify = (): void => undefined;
  const response = new Promise<IncomingMessage>((resolve) => req.once('response', resolve));
  const ended = response.then(
    (res) =>
      new Promise<{ status: number; text: string }>((resolve) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          notify();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      }),
  );
  const lines = async (count: number): Promise<unknown[]> => {
    for (let i = 0; i < 500 && text.split('\n').length - 1 < count; i++)
      await new Promise<void>((resolve) => {
        notify = resolve;
        setTimeout(resolve, 10);
      });
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as unknown);
  };
  return { req, lines, ended };
}

describe('the narinfo stream', () => {
  it('answers each line in order with the batch route’s answer, never another repository’s path', async () => {
    const token = await server.ciToken(APP);
    const stream = openStream(token);
    stream.req.write(`${JSON.stringify({ id: 1, hashParts: [hash.app, ABSENT] })}\n`);
    stream.req.write(
      `${JSON.stringify({ id: 2, hashParts: [hash.other] })}\n${JSON.stringify({ id: 3, hashParts: [] })}\n`,
    );
    const [first, second, third] = await stream.lines(3);
    const batch = await fetch(`${server.url}/_api/v1/narinfos`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hashParts: [hash.app, ABSENT] }),
    });
    expect(first).toEqual({ id: 1, ...((await batch.json()) as object) });
    expect(Object.keys((first as { narinfos: object }).narinfos)).toEqual([hash.app]);
    expect(second).toEqual({ id: 2, narinfos: {} });
    expect(third).toEqual({ id: 3, narinfos: {} });
    stream.req.end();
    expect((await stream.ended).status).toBe(200);
  });

  it('answers a bad line with an error line that names the problem, and ends', async () => {
    const stream = openStream(await server.ciToken(APP));
    stream.req.write(`${JSON.stringify({ id: 1, hashParts: [hash.app] })}\n`);
    stream.req.write(`${JSON.stringify({ id: 2, hashParts: ['../etc/passwd'] })}\n`);
    stream.req.write(`${JSON.stringify({ id: 3, hashParts: [hash.app] })}\n`);
    const { text } = await stream.ended;
    const lines = text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { id: number; error?: string });
    expect(lines.map((line) => line.id)).toEqual([1, 2]);
    expect(lines[1]!.error).toMatch(
      /hashParts\[0\] "\.\.\/etc\/passwd" is not a 32-character nix32 store path hash/,
    );
    stream.req.destroy();
  });

  it('answers a line longer than the batch route allows with an error line, once, and ends', async () => {
    const stream = openStream(await server.ciToken(APP));
    stream.req.write(`${JSON.stringify({ id: 1, hashParts: [hash.app] })}\n`);
    stream.req.write('x'.repeat(40 * 1024));
    stream.req.write('x'.repeat(40 * 1024));
    stream.req.write('x'.repeat(40 * 1024));
    const lines = (await stream.ended).text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { id?: number; error?: string });
    expect(lines).toEqual([
      { id: 1, narinfos: { [hash.app]: expect.any(String) } },
      { error: 'a line longer than 65536 bytes' },
    ]);
    stream.req.destroy();
  });

  it('refuses a request without a token when no slice is public, and a bad token', async () => {
    for (const token of [null, 'not-a-token']) {
      const { status, text } = await openStream(token).ended;
      expect(status).toBe(401);
      expect(text).toMatch(/token/);
    }
  });

  it('ends when the token it was opened with expires', async () => {
    const stream = openStream(await server.ciToken(APP));
    stream.req.write(`${JSON.stringify({ id: 1, hashParts: [hash.app] })}\n`);
    expect(await stream.lines(1)).toHaveLength(1);
    const started = Date.now();
    // The token lives 3 s; the stream must not outlive it (by much: the timer's granularity).
    const { status } = await stream.ended;
    expect(status).toBe(200);
    expect(Date.now() - started).toBeLessThan(4_000);
    stream.req.destroy();
  });
});
