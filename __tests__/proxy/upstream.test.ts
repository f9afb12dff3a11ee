import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { NarSizeError } from '../../src/proxy/push/nar-file.js';
import { parseRetryAfter, retryDelay, DEFAULT_RETRY_POLICY } from '../../src/proxy/upstream/retry.js';
import { Upstream } from '../../src/proxy/upstream/upstream-client.js';

const FAST = { baseDelayMs: 5, maxDelayMs: 20 };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listen(server: Server | TcpServer): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise((resolve) => {
        if ('closeAllConnections' in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A real HTTP server answering each request with the next scripted reply; records what it got. */
async function scriptedServer(replies: ((req: IncomingMessage, res: ServerResponse) => void)[]) {
  const seen: { method?: string; url?: string; authorization?: string; at: number; body: string }[] = [];
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    seen.push({
      method: req.method,
      url: req.url,
      authorization: req.headers.authorization,
      at: Date.now(),
      body,
    });
    const reply = replies[Math.min(seen.length - 1, replies.length - 1)]!;
    reply(req, res);
  });
  return { url: await listen(server), seen };
}

const status =
  (code: number, headers: Record<string, string> = {}) =>
  (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(code, headers);
    res.end(`status ${code}`);
  };

/** A token that starts expired and is replaced by a fresh one when the client reports a 401. */
function refreshableToken(): ConstructorParameters<typeof Upstream>[1] {
  let token = 'expired-token-value';
  return {
    token: () => token,
    onUnauthorized: async () => {
      token = 'fresh-token-value';
      return true;
    },
  };
}

function client(url: string, options: ConstructorParameters<typeof Upstream>[1] = {}): Upstream {
  const upstream = new Upstream(url, { retry: FAST, ...options });
  cleanups.push(() => upstream.destroy());
  return upstream;
}

describe('retry policy', () => {
  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });

  it('backs off exponentially with jitter, capped, and never waits less than Retry-After (up to its cap)', () => {
    const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 };
    expect(retryDelay(0, policy, undefined, () => 1)).toBe(100);
    expect(retryDelay(3, policy, undefined, () => 1)).toBe(800);
    expect(retryDelay(10, policy, undefined, () => 1)).toBe(1000);
    expect(retryDelay(3, policy, undefined, () => 0.5)).toBe(400);
    expect(retryDelay(0, policy, 3000, () => 1)).toBe(3000);
    expect(retryDelay(0, policy, 60_000, () => 1)).toBe(5000);
  });
});

describe('Upstream', () => {
  it('retries 503 and 429, honouring Retry-After, then returns the success', async () => {
    const { url, seen } = await scriptedServer([
      status(503),
      status(429, { 'retry-after': '1' }),
      status(200),
    ]);
    const response = await client(url).request({ method: 'GET', path: '/x.narinfo' });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    expect(seen).toHaveLength(3);
    // The 429 asked for a second; backoff alone would have waited at most 20 ms.
    expect(seen[2]!.at - seen[1]!.at).toBeGreaterThanOrEqual(950);
  });

  it('gives up after the configured retries and returns the last answer', async () => {
    const { url, seen } = await scriptedServer([status(502)]);
    const response = await client(url, { retry: { ...FAST, retries: 2 } }).request({
      method: 'HEAD',
      path: '/y',
    });
    expect(response.statusCode).toBe(502);
    await response.body.dump();
    expect(seen).toHaveLength(3);
  });

  it('does not retry client errors', async () => {
    const { url, seen } = await scriptedServer([status(400), status(200)]);
    const response = await client(url).request({ method: 'GET', path: '/z' });
    expect(response.statusCode).toBe(400);
    await response.body.dump();
    expect(seen).toHaveLength(1);
  });

  it.each([501, 505, 507])('does not retry %i: the request cannot be taken as it is', async (code) => {
    const { url, seen } = await scriptedServer([status(code), status(200)]);
    const response = await client(url).request({ method: 'PUT', path: '/z', body: () => 'payload' });
    expect(response.statusCode).toBe(code);
    await response.body.dump();
    expect(seen).toHaveLength(1);
  });

  it('sends the body again on a retry and injects the current token', async () => {
    const { url, seen } = await scriptedServer([status(500), status(201)]);
    let token = 'first-token-value';
    const upstream = client(url, { token: () => token });
    const response = await upstream.request({ method: 'PUT', path: '/p', body: () => 'payload' });
    await response.body.dump();
    expect(response.statusCode).toBe(201);
    expect(seen.map((s) => s.body)).toEqual(['payload', 'payload']);
    expect(seen[0]!.authorization).toBe('Bearer first-token-value');
    token = 'second-token-value';
    await (await upstream.request({ method: 'GET', path: '/q' })).body.dump();
    expect(seen[2]!.authorization).toBe('Bearer second-token-value');
  });

  // Both ways of asking (an answer streamed, or a small one read whole) share the retry loop.
  const SENDS = ['request', 'requestText'] as const;

  it.each(SENDS)('%s retries a body that fails, unless its error says retrying cannot help', async (send) => {
    // Reads whatever arrives; an upload cut short is simply dropped.
    const server = createServer((req, res) => {
      req.on('error', () => undefined).on('end', () => res.end());
      req.resume();
    });
    const upstream = client(await listen(server), { retry: { ...FAST, retries: 2 } });
    const failingBody = (error: Error) => () =>
      new Readable({
        read() {
          this.push('partial');
          this.destroy(error);
        },
      });
    let made = 0;
    const flaky = new Error('read failed');
    await expect(
      upstream[send]({ method: 'PUT', path: '/a', body: () => (made++, failingBody(flaky)()) }),
    ).rejects.toThrow('read failed');
    expect(made).toBe(3);
    made = 0;
    const wrongSize = new NarSizeError('the NAR of /nix/store/x is 3 bytes, but the store says 4');
    await expect(
      upstream[send]({ method: 'PUT', path: '/b', body: () => (made++, failingBody(wrongSize)()) }),
    ).rejects.toBe(wrongSize);
    expect(made).toBe(1);
  });

  it('requestText stops making and sending a streamed body once the server has answered', async () => {
    // Answers at once, without reading the body (as the server does for a bad token or a file too large).
    const server = createServer((_req, res) => res.writeHead(413).end('too large'));
    const upstream = client(await listen(server));
    const CHUNK = Buffer.alloc(256 * 1024, 1);
    let made = 0;
    let abandoned!: () => void;
    const bodyAbandoned = new Promise<void>((resolve) => (abandoned = resolve));
    // 1 GiB if it were all sent.
    async function* body(): AsyncGenerator<Buffer> {
      try {
        for (; made < 4096; made++) yield CHUNK;
      } finally {
        abandoned();
      }
    }
    const response = await upstream.requestText({ method: 'PUT', path: '/big', body });
    expect(response).toMatchObject({ statusCode: 413, text: 'too large' });
    await bodyAbandoned;
    expect(made).toBeLessThan(4096);
  });

  it('on 401 asks for a fresh token once and tries again', async () => {
    const { url, seen } = await scriptedServer([status(401), status(200)]);
    const upstream = client(url, refreshableToken());
    const response = await upstream.request({ method: 'GET', path: '/r' });
    await response.body.dump();
    expect(response.statusCode).toBe(200);
    expect(seen.map((s) => s.authorization)).toEqual([
      'Bearer expired-token-value',
      'Bearer fresh-token-value',
    ]);
  });

  it.each(SENDS)('%s retries network errors, then throws naming the cause', async (send) => {
    // A port that was just free: connections are refused.
    const tcp = createTcpServer();
    const url = await listen(tcp);
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    const retries: string[] = [];
    const upstream = client(url, {
      retry: { ...FAST, retries: 2 },
      onRetry: (info) => retries.push(info.reason),
    });
    await expect(upstream[send]({ method: 'GET', path: '/s' })).rejects.toThrow(/ECONNREFUSED/);
    expect(retries).toHaveLength(2);
  });

  it.each(SENDS)(
    '%s stops waiting when the signal aborts, even if the server never answers',
    async (send) => {
      const sockets: Socket[] = [];
      const tcp = createTcpServer((socket) => sockets.push(socket));
      const url = await listen(tcp);
      cleanups.push(async () => sockets.forEach((s) => s.destroy()));
      const upstream = client(url);
      await expect(
        upstream[send]({ method: 'GET', path: '/t', signal: AbortSignal.timeout(300) }),
      ).rejects.toThrow();
      expect(sockets.length).toBeGreaterThanOrEqual(1);
    },
  );

  it('requestText: reads small answers whole, with the same retries, token and 401 refresh', async () => {
    const { url, seen } = await scriptedServer([
      status(503),
      status(401),
      (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"narinfos":{}}'),
    ]);
    const upstream = client(url, refreshableToken());
    const response = await upstream.requestText({
      method: 'POST',
      path: '/_api/v1/narinfos',
      headers: { 'content-type': 'application/json' },
      body: () => '{"hashParts":[]}',
    });
    expect(response).toMatchObject({ statusCode: 200, text: '{"narinfos":{}}' });
    expect(response.headers['content-type']).toBe('application/json');
    expect(seen.map((s) => [s.method, s.body, s.authorization])).toEqual([
      ['POST', '{"hashParts":[]}', 'Bearer expired-token-value'],
      ['POST', '{"hashParts":[]}', 'Bearer expired-token-value'],
      ['POST', '{"hashParts":[]}', 'Bearer fresh-token-value'],
    ]);
  });
});
