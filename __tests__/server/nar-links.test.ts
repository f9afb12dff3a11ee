/**
 * Signed NAR links: `POST /_api/v1/nar-links` gives, for each NAR the token may read, a short-lived
 * URL on the server that reads that NAR without the token. A link must be exactly as strong as
 * the token's own check: refused once expired, altered, used for another NAR, after its token
 * expired or was revoked, or when its slices no longer read the NAR; never given for a NAR the
 * token cannot read; and neither it nor the token is ever logged.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeJwt } from 'jose';
import { NAR_LINKS_LIMIT, NAR_LINKS_PATH } from '../../src/contracts/nar-links.js';
import { dataPaths } from '../../src/server/data-dir.js';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata-store.js';
import { makeNixMachine, nix, nixBuild, randomChainExpr } from '../support/nix.js';
import { rawRequest, startTestServer, writeNetrc, type TestServer } from '../support/server.js';
import { hashPart } from '../action/support.js';

let clock = Date.now();
let server: TestServer;
/** The NAR URLs (`nar/…`) of a pushed chain of three paths, and a reader's token for them. */
let nars: string[];
let reader: string;

async function narUrls(token: string, paths: string[]): Promise<string[]> {
  return Promise.all(
    paths.map(async (path) => {
      const res = await fetch(`${server.url}/${hashPart(path)}.narinfo`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return /^URL: (\S+)$/m.exec(await res.text())![1]!;
    }),
  );
}

beforeAll(async () => {
  server = await startTestServer({ now: () => clock });
  const [top] = await nixBuild(randomChainExpr(3, 3000));
  const pusher = makeNixMachine();
  const netrc = writeNetrc(pusher.dir, await server.ciToken());
  await nix(
    'nix',
    ['copy', '--option', 'netrc-file', netrc, '--to', `${server.url}?compression=zstd`, top!],
    {
      machine: pusher,
    },
  );
  reader = await server.readToken(['acme/*']);
  nars = await narUrls(reader, (await nix('nix-store', ['-qR', top!])).trim().split('\n'));
});
afterAll(async () => {
  await server?.close();
});

async function links(token: string | undefined, body: unknown) {
  const res = await fetch(`${server.url}${NAR_LINKS_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

async function linkTo(nar: string, token: string): Promise<string> {
  const answer = await links(token, { nars: [nar] });
  expect(answer.status).toBe(200);
  const link = (JSON.parse(answer.text) as { links: Record<string, string> }).links[nar];
  expect(link).toBeDefined();
  return link!;
}

/** GETs `path` on the server without credentials: status and body (bytes or the error). */
async function get(path: string): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(`${server.url}/${path}`);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

function withSig(link: string, sig: string): string {
  return `${link.split('?', 1)[0]}?sig=${sig}`;
}

describe('NAR links', () => {
  it('give each readable NAR a link that reads it without the token, for two minutes at most', async () => {
    const unknown = `nar/${'1'.repeat(52)}.nar.zst`;
    const answer = await links(reader, { nars: [...nars, unknown] });
    expect(answer.status).toBe(200);
    const { links: given, expires_in: expiresIn } = JSON.parse(answer.text) as {
      links: Record<string, string>;
      expires_in: number;
    };
    expect(Object.keys(given).sort()).toEqual([...nars].sort());
    expect(expiresIn).toBeGreaterThan(100);
    expect(expiresIn).toBeLessThanOrEqual(120);
    for (const nar of nars) {
      const link = given[nar]!;
      expect(link).toMatch(new RegExp(`^${nar.replace(/\./g, '\\.')}\\?sig=[\\w-]+\\.[\\w-]+$`));
      const viaToken = await fetch(`${server.url}/${nar}`, {
        headers: { authorization: `Bearer ${reader}` },
      });
      const viaLink = await get(link);
      expect(viaLink.status).toBe(200);
      expect(viaLink.body.equals(Buffer.from(await viaToken.arrayBuffer()))).toBe(true);
    }
    // Without the link, the same GET needs the token.
    expect((await get(nars[0]!)).status).toBe(404);
    // The token is in no link, and no link in the server's log.
    expect(JSON.stringify(given)).not.toContain(reader);
    expect(JSON.stringify(given)).not.toContain(reader.split('.')[2]!);
    const log = server.logs.join('\n');
    for (const link of Object.values(given)) expect(log).not.toContain(link.split('sig=')[1]!);
    expect(log).not.toContain(reader);
  });

  it('are given for no NAR the token cannot read', async () => {
    const stranger = await server.readToken(['other/*']);
    const answer = await links(stranger, { nars });
    expect([answer.status, JSON.parse(answer.text).links]).toEqual([200, {}]);
    // Without a token, nothing is public here.
    expect(JSON.parse((await links(undefined, { nars })).text).links).toEqual({});
  });

  it('refuse an expired link, and a link whose token expired', async () => {
    const link = await linkTo(nars[0]!, reader);
    clock += 119_000;
    expect((await get(link)).status).toBe(200);
    clock += 1_000;
    const expired = await get(link);
    expect(expired.status).toBe(403);
    expect(expired.body.toString()).toMatch(/^signed NAR link expired at \d{4}-/m);

    // A link lives no longer than its token: one made a minute before the token expires.
    const shortLived = await server.readToken(['acme/*']); // 600 s
    clock += 540_000;
    const late = await linkTo(nars[0]!, shortLived);
    const sig = new URLSearchParams(late.split('?')[1]).get('sig')!;
    const payload = JSON.parse(Buffer.from(sig.split('.')[0]!, 'base64url').toString()) as { e: number };
    expect(payload.e).toBe(decodeJwt(shortLived).exp);
    clock += 60_000;
    expect((await get(late)).status).toBe(403);
  });

  it('refuse an altered link and a link used for another NAR', async () => {
    const link = await linkTo(nars[0]!, await server.readToken(['acme/*']));
    const sig = new URLSearchParams(link.split('?')[1]).get('sig')!;
    const [payload, mac] = sig.split('.') as [string, string];

    // The link of NAR 0 on NAR 1's path.
    const other = await get(withSig(nars[1]!, sig));
    expect([other.status, other.body.toString().trim()]).toEqual([403, 'signed NAR link is for another NAR']);

    // The payload rewritten to name NAR 1 (or to live longer), the MAC kept.
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { k: string; e: number };
    for (const changed of [
      { ...claims, k: nars[1]!.slice('nar/'.length) },
      { ...claims, e: claims.e + 86_400 },
      { ...claims, g: { ...(claims as unknown as { g: object }).g, read: ['*'] } },
    ]) {
      const forged = `${Buffer.from(JSON.stringify(changed)).toString('base64url')}.${mac}`;
      const refused = await get(withSig(nars[1]!, forged));
      expect(refused.status).toBe(403);
      expect(refused.body.toString()).toContain('signed NAR link has a bad signature');
    }
    // One flipped character of the MAC; garbage.
    const flipped = mac.slice(0, -2) + (mac.at(-2) === 'A' ? 'B' : 'A') + mac.at(-1);
    expect((await get(withSig(nars[0]!, `${payload}.${flipped}`))).status).toBe(403);
    for (const garbage of ['', 'x', 'a.b.c', `${payload}.`])
      expect((await get(withSig(nars[0]!, garbage))).status).toBe(403);
  });

  it('stop working within a second of their read token being revoked', async () => {
    const token = await server.readToken(['acme/*']);
    const link = await linkTo(nars[2]!, token);
    expect((await get(link)).status).toBe(200);
    const store = new SqliteMetadataStore(dataPaths(server.dataDir).database);
    try {
      expect(await store.revokeReadToken(decodeJwt(token).jti!, new Date(clock))).toBe(true);
    } finally {
      await store.close();
    }
    clock += 1_000; // past the second a server trusts its last look at the database
    const revoked = await get(link);
    expect(revoked.status).toBe(401);
    expect(revoked.body.toString()).toContain('cache token: read token revoked');
  });

  it('refuse malformed requests with a message naming the problem', async () => {
    const reader = await server.readToken(['acme/*']);
    expect(await links(reader, 'not json')).toMatchObject({ status: 400 });
    const badName = await links(reader, { nars: ['nar/abc.nar'] });
    expect(badName.status).toBe(400);
    expect(badName.text).toContain('nars[0] "nar/abc.nar" is not nar/<52-character nix32 hash>');
    expect((await links(reader, { nar: nars })).text).toContain('request body must be {"nars"');
    const tooMany = await links(reader, { nars: Array(NAR_LINKS_LIMIT + 1).fill(nars[0]) });
    expect(tooMany.status).toBe(413);
    const get405 = await rawRequest(server.url, 'GET', NAR_LINKS_PATH);
    expect(get405.status).toBe(405);
  });
});
