/**
 * Every kind of bad input gets a 4xx naming the problem and changes nothing: no NAR file (not even
 * a temp file), no narinfo, no recorded upload, no audit row.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { SignJWT, UnsecuredJWT } from 'jose';
import { Hash } from '../../src/nix/hash.js';
import { createCompressor } from '../../src/nix/nar.js';
import { serializeNarInfo, type NarInfo } from '../../src/nix/narinfo.js';
import { nixBuild, randomChainExpr } from '../support/nix.js';
import {
  narUploadFor,
  pushRaw,
  rawRequest,
  startTestServer,
  storedState,
  type NarUpload,
  type StoredState,
  type TestServer,
} from '../support/server.js';

const MAX_NAR = 64 * 1024;
let server: TestServer;
let writer: string;
let upload: NarUpload;
let before: StoredState;

beforeAll(async () => {
  server = await startTestServer({ maxNarSize: MAX_NAR });
  writer = await server.ciToken();
  upload = await narUploadFor((await nixBuild(randomChainExpr(1, 1000)))[0] as string);
});
afterAll(async () => {
  await server?.close();
});
beforeEach(() => {
  before = storedState(server.dataDir);
});

function expectUnchanged(): void {
  expect(storedState(server.dataDir)).toEqual(before);
}

const auth = (token: string) => ({ authorization: `Bearer ${token}` });
const narinfoText = (changes: Partial<NarInfo>) => serializeNarInfo({ ...upload.narinfo, ...changes });

describe('malformed names and path traversal', () => {
  it.each([
    ['GET', '/abc.narinfo', 400, "'abc.narinfo' is not <32-character nix32 store path hash>.narinfo"],
    ['GET', `/${'e'.repeat(32)}.narinfo`, 400, 'is not <32-character nix32 store path hash>.narinfo'],
    ['PUT', `/${'0'.repeat(31)}.narinfo`, 400, 'is not <32-character nix32 store path hash>.narinfo'],
    ['GET', '/nar/xyz.nar', 400, "'nar/xyz.nar' is not nar/<52-character nix32 sha256>.nar[.zst|.xz]"],
    ['PUT', `/nar/${'0'.repeat(52)}.nar.bz2`, 400, "unsupported NAR compression '.bz2'"],
    ['GET', '/nar/../sluice.db', 400, 'path traversal is not allowed'],
    ['GET', '/../token-key.pem', 400, 'path traversal is not allowed'],
    ['GET', '/%2e%2e/sluice.db', 400, 'path traversal is not allowed'],
    ['PUT', '/nar/%2e%2e%2fsluice.db', 400, 'path traversal is not allowed'],
    ['GET', '/nar/%252e%252e%252fsigning-key.sec', 400, 'path traversal is not allowed'],
    ['GET', '/nar/..%5csigning-key.sec', 400, 'path traversal is not allowed'],
    ['GET', '/nar\\..\\sluice.db', 400, 'path traversal is not allowed'],
    ['GET', `/nar%2f${'0'.repeat(52)}.nar`, 400, 'percent-encoded characters are not allowed in cache paths'],
    ['GET', '/nar//x', 400, 'empty path segments are not allowed'],
    ['GET', '/index.html', 404, 'no such endpoint: /index.html'],
    ['DELETE', `/${'0'.repeat(32)}.narinfo`, 405, 'DELETE is not allowed'],
  ])('%s %s → %i', async (method, path, status, message) => {
    const res = await rawRequest(server.url, method, path, {
      headers: auth(writer),
      ...(method === 'PUT' ? { body: 'x' } : {}),
    });
    expect(res.status).toBe(status);
    expect(res.text).toContain(message);
    expectUnchanged();
  });
});

describe('tokens', () => {
  const put = (headers: Record<string, string>) =>
    rawRequest(server.url, 'PUT', `/${upload.narUrl}`, { headers, body: upload.nar });

  it('no token: 401, and the body is not even requested (Expect: 100-continue)', async () => {
    const res = await put({ expect: '100-continue' });
    expect([res.status, res.continued]).toEqual([401, false]);
    expect(res.text).toBe('uploads need a cache token with a write slice\n');
    expectUnchanged();
  });

  it('a read-only token: 403', async () => {
    const res = await put({ ...auth(await server.readToken(['*'])), expect: '100-continue' });
    expect([res.status, res.continued, res.text]).toEqual([
      403,
      false,
      'this cache token grants no write slice\n',
    ]);
    expectUnchanged();
  });

  it('forged, expired and garbled cache tokens: 401 naming the problem', async () => {
    const tokenKey = readFileSync(join(server.dataDir, 'token-key.pem'), 'utf8');
    const publicPem = createPublicKey(tokenKey).export({ type: 'spki', format: 'pem' }) as string;
    const claims = { kind: 'ci', read: ['acme/app'], write: 'acme/app', identity: { issuer: 'github' } };
    const now = () => Math.floor(Date.now() / 1000);
    /** A token with the real key and the right claims, except for `overrides`. */
    const signed = (overrides: Record<string, unknown>) =>
      new SignJWT({
        iss: 'sluice',
        aud: 'sluice-cache',
        exp: now() + 3600,
        jti: randomUUID(),
        ...claims,
        ...overrides,
      })
        .setProtectedHeader({ alg: 'EdDSA' })
        .sign(createPrivateKey(tokenKey));
    const base = () => new SignJWT(claims).setIssuer('sluice').setAudience('sluice-cache').setIssuedAt();
    const forged = {
      algNone: new UnsecuredJWT(claims)
        .setIssuer('sluice')
        .setAudience('sluice-cache')
        .setExpirationTime('1h')
        .encode(),
      hs256WithPublicKey: await base()
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(publicPem)),
      otherKey: await base()
        .setProtectedHeader({ alg: 'EdDSA' })
        .setExpirationTime('1h')
        .sign(generateKeyPairSync('ed25519').privateKey),
      garbage: 'not-a-jwt',
      // Signed with the server's real token key, but wrong in one claim each.
      expired: await signed({ exp: now() - 3600, iat: now() - 7200 }),
      wrongIssuer: await signed({ iss: 'someone-else' }),
      wrongAudience: await signed({ aud: 'another-service' }),
    };
    const expected: Record<keyof typeof forged, RegExp> = {
      algNone: /algorithm not allowed/,
      hs256WithPublicKey: /algorithm not allowed/,
      otherKey: /bad signature/,
      garbage: /malformed/,
      expired: /expired/,
      wrongIssuer: /iss/,
      wrongAudience: /aud/,
    };
    for (const [kind, token] of Object.entries(forged) as [keyof typeof forged, string][]) {
      const res = await put(auth(token));
      expect([kind, res.status]).toEqual([kind, 401]);
      expect([kind, res.text]).toEqual([kind, expect.stringMatching(/^cache token: \S/)]);
      expect([kind, res.text]).toEqual([kind, expect.stringMatching(expected[kind])]);
    }
    // Basic auth carries the token as its password: a forged one fares no better.
    const basic = Buffer.from(`x:${forged.otherKey}`).toString('base64');
    expect((await put({ authorization: `Basic ${basic}` })).status).toBe(401);
    expect((await put({ authorization: 'Digest abc' })).text).toContain(
      "unsupported Authorization scheme 'Digest'",
    );
    expectUnchanged();
  });

  it('forged or unusable CI ID tokens are refused by the exchange', async () => {
    const forge = server.issuer.forge;
    for (const idToken of [
      await forge.algNone(),
      await forge.hs256WithPublicKey(),
      await forge.otherKey(),
      await forge.wrongIssuer(),
      await forge.wrongAudience(),
      await forge.expired(),
    ]) {
      const res = await rawRequest(server.url, 'POST', '/_api/v1/token', { headers: auth(idToken) });
      expect(res.status).toBe(401);
    }
    expectUnchanged();
  });
});

describe('uploads that do not check out', () => {
  it('a NAR whose bytes do not hash to its name: 400', async () => {
    const res = await rawRequest(server.url, 'PUT', `/nar/${'0'.repeat(52)}.nar`, {
      headers: { ...auth(writer), expect: '100-continue' },
      body: upload.nar,
    });
    expect(res.status).toBe(400);
    expect(res.text).toContain(
      `NAR file hashes to ${Hash.of('sha256', upload.nar).toString()}, not to sha256:${'0'.repeat(52)}`,
    );
    expectUnchanged();
  });

  it('a file that does not decompress as its extension says: 400', async () => {
    const garbage = Buffer.from('this is not xz data');
    const res = await rawRequest(server.url, 'PUT', `/nar/${Hash.of('sha256', garbage).nix32}.nar.xz`, {
      headers: auth(writer),
      body: garbage,
    });
    expect(res.status).toBe(400);
    expect(res.text).toContain('NAR file does not decompress as xz');
    expectUnchanged();
  });

  it('oversized bodies: 413 from Content-Length before reading, and while streaming without one', async () => {
    const big = Buffer.alloc(MAX_NAR + 1);
    const declared = await rawRequest(server.url, 'PUT', `/nar/${Hash.of('sha256', big).nix32}.nar`, {
      headers: { ...auth(writer), expect: '100-continue' },
      body: big,
    });
    expect([declared.status, declared.continued]).toEqual([413, false]);
    expect(declared.text).toBe(
      `NAR file of ${MAX_NAR + 1} bytes is larger than the limit of ${MAX_NAR} bytes\n`,
    );

    const streamed = await fetch(`${server.url}/nar/${Hash.of('sha256', big).nix32}.nar`, {
      method: 'PUT',
      headers: auth(writer),
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(big);
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(await streamed.text()).toBe(`NAR file is larger than the limit of ${MAX_NAR} bytes\n`);

    const narinfo = await rawRequest(server.url, 'PUT', `/${upload.hashPart}.narinfo`, {
      headers: auth(writer),
      body: 'X'.repeat(64 * 1024 + 1),
    });
    expect(narinfo.status).toBe(413);
    expect(narinfo.text).toContain('narinfo of 65537 bytes is larger than the limit of 65536 bytes');
    expectUnchanged();
  });

  it('a truncated upload leaves nothing behind', async () => {
    const { hostname, port } = new URL(server.url);
    const socket = connect(Number(port), hostname);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      `PUT /${upload.narUrl} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${writer}\r\ncontent-length: ${upload.nar.length}\r\n\r\n`,
    );
    socket.write(upload.nar.subarray(0, 100));
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.destroy();
    // The server notices the dropped connection asynchronously: wait until its temp file is gone.
    for (let i = 0; i < 50 && storedState(server.dataDir).files.length !== before.files.length; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expectUnchanged();
  });

  describe('narinfos', () => {
    let uploaded = false;
    beforeEach(async () => {
      if (!uploaded) {
        const res = await rawRequest(server.url, 'PUT', `/${upload.narUrl}`, {
          headers: auth(writer),
          body: upload.nar,
        });
        expect(res.status).toBe(201);
        uploaded = true;
        before = storedState(server.dataDir);
      }
    });

    it.each([
      ['malformed', 'StorePath: /nix/store/x\n', 'malformed narinfo: StorePath: '],
      [
        'missing a field',
        () => narinfoText({}).replace(/^NarHash:.*\n/m, ''),
        "malformed narinfo: missing required field 'NarHash'",
      ],
      [
        'for another store path',
        () => narinfoText({ storePath: `/nix/store/${'1'.repeat(32)}-other` }),
        'does not match the uploaded name',
      ],
      [
        'with a NarHash that is not the NAR’s',
        () => narinfoText({ narHash: Hash.of('sha256', 'other') }),
        'NarHash sha256:',
      ],
      [
        'with a wrong NarSize',
        () => narinfoText({ narSize: upload.nar.length + 1 }),
        'does not match the uploaded NAR (',
      ],
      ['with a wrong FileSize', () => narinfoText({ fileSize: 7 }), 'FileSize 7 does not match the '],
      [
        'with a FileHash that is not the URL’s',
        () => narinfoText({ fileHash: Hash.of('sha256', 'x') }),
        'FileHash sha256:',
      ],
      [
        'with a Compression the URL does not have',
        () => narinfoText({ compression: 'xz' }),
        "Compression 'xz' does not match the URL",
      ],
      [
        'pointing at a NAR never uploaded',
        () => narinfoText({ url: `nar/${'2'.repeat(52)}.nar`, fileHash: undefined }),
        `its NAR nar/${'2'.repeat(52)}.nar was not uploaded to slice 'acme/app'`,
      ],
    ])('%s: 400', async (_what, body, message) => {
      const res = await rawRequest(server.url, 'PUT', `/${upload.hashPart}.narinfo`, {
        headers: { ...auth(writer), expect: '100-continue' },
        body: typeof body === 'function' ? body() : body,
      });
      expect(res.status).toBe(400);
      expect(res.text).toContain(message);
      expectUnchanged();
    });
  });
});

describe('the protocol around the edges', () => {
  let narUrl: string;
  let reader: string;
  let other: NarUpload;
  beforeAll(async () => {
    // A zstd NAR this time, uploaded by the normal path.
    other = await narUploadFor((await nixBuild(randomChainExpr(1, 3000)))[0] as string);
    const compressed: Buffer[] = [];
    const zstd = createCompressor('zstd');
    zstd.on('data', (chunk: Buffer) => compressed.push(chunk));
    await new Promise((resolve) => zstd.end(other.nar, () => zstd.on('end', resolve)));
    const file = Buffer.concat(compressed);
    const fileHash = Hash.of('sha256', file);
    narUrl = `nar/${fileHash.nix32}.nar.zst`;
    other.narUrl = narUrl;
    other.nar = file;
    other.narinfo = { ...other.narinfo, url: narUrl, compression: 'zstd', fileHash, fileSize: file.length };
    expect(await pushRaw(server.url, writer, other)).toEqual([201, 201]);
    reader = await server.readToken(['acme/*']);
  });

  it('ranges: 206 with Content-Range, 416 outside the file; ETag and immutable private caching', async () => {
    const full = await fetch(`${server.url}/${narUrl}`, { headers: auth(reader) });
    const bytes = Buffer.from(await full.arrayBuffer());
    expect(full.headers.get('cache-control')).toBe('private, max-age=31536000, immutable');
    const etag = full.headers.get('etag') as string;
    const part = await fetch(`${server.url}/${narUrl}`, {
      headers: { ...auth(reader), range: 'bytes=10-19' },
    });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-19/${bytes.length}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(10, 20));
    const tail = await fetch(`${server.url}/${narUrl}`, { headers: { ...auth(reader), range: 'bytes=-5' } });
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(bytes.subarray(-5));
    const outside = await fetch(`${server.url}/${narUrl}`, {
      headers: { ...auth(reader), range: `bytes=${bytes.length}-` },
    });
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe(`bytes */${bytes.length}`);
    const cached = await fetch(`${server.url}/${narUrl}`, {
      headers: { ...auth(reader), 'if-none-match': etag },
    });
    expect(cached.status).toBe(304);
  });

  it('a PUT of nix-cache-info is harmless', async () => {
    const res = await rawRequest(server.url, 'PUT', '/nix-cache-info', { body: 'StoreDir: /elsewhere\n' });
    expect(res.status).toBe(204);
    expect(await (await fetch(`${server.url}/nix-cache-info`)).text()).toContain('StoreDir: /nix/store');
    expectUnchanged();
  });

  it('served narinfos carry the server signature only, and point at the stored NAR', async () => {
    const res = await fetch(`${server.url}/${other.hashPart}.narinfo`, { headers: auth(reader) });
    const text = await res.text();
    const sigs = text.match(/^Sig: .*$/gm) ?? [];
    expect(sigs).toHaveLength(1);
    expect(sigs[0]).toMatch(new RegExp(`^Sig: ${server.publicKey.split(':')[0]}:`));
    expect(text).toContain(`URL: ${narUrl}\nCompression: zstd\n`);
  });
});
