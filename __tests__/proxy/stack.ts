/**
 * A real Sluice for the proxy tests (the shared test server: real server, local OIDC issuer), cache
 * tokens got through the real exchange with its whole answer, and two small real HTTP servers a
 * test may need: a static "upstream cache" and a front that fails some requests before forwarding.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  parseTokenExchangeResponse,
  TOKEN_EXCHANGE_PATH,
  type ExchangedToken,
} from '../../src/contracts/server-api.js';
import { githubClaims } from '../support/oidc-issuer.js';
import { startTestServer, type TestServer } from '../support/server.js';
import {
  NARINFO_BATCH_PATH,
  NARINFO_STREAM_PATH,
  RECENT_NARINFOS_PATH,
} from '../../src/contracts/narinfo-batch.js';
import { NARINFO_SET_PATH } from '../../src/contracts/narinfo-set.js';

export interface Stack {
  server: TestServer;
  /** The exchange's answer for a push to main of acme/app. */
  cacheToken(): Promise<ExchangedToken>;
  close(): Promise<void>;
}

/** `yaml`: extra server config, e.g. `token_ttl: 3s`; `now`: the server's clock. */
export async function startStack(yaml?: string, now?: () => number): Promise<Stack> {
  const server = await startTestServer({ ...(yaml ? { yaml } : {}), ...(now ? { now } : {}) });
  return {
    server,
    async cacheToken() {
      const response = await fetch(`${server.url}${TOKEN_EXCHANGE_PATH}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await server.issuer.sign(githubClaims())}` },
      });
      if (response.status !== 200) throw new Error(`exchange: ${response.status} ${await response.text()}`);
      return parseTokenExchangeResponse(await response.text());
    },
    close: () => server.close(),
  };
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closer(server: Server): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

/** A static binary cache that serves a narinfo for exactly the given store path hashes. */
export async function startStaticCache(
  hashParts: string[],
): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const match = /^\/([0-9a-z]{32})\.narinfo$/.exec(req.url ?? '');
    if (match && hashParts.includes(match[1]!)) {
      res.writeHead(200, { 'content-type': 'text/x-nix-narinfo' }).end('StorePath: irrelevant for HEAD\n');
    } else res.writeHead(404).end();
  });
  return { url: await listen(server), requests, close: closer(server) };
}

/**
 * A front for the real server: requests matching `failWhen` get `status` (with Retry-After) the
 * first `failures` times, everything else is forwarded unchanged. Records each request's method
 * and path, and the bodies of POSTs (the batch lookups).
 */
export async function startFront(
  target: string,
  options: {
    failures?: number;
    status?: number;
    retryAfter?: string;
    failWhen?: (method: string, url: string) => boolean;
    /** Answer the narinfo set's route 404, as a server from before it: misses go to the server too. */
    refuseSet?: boolean;
    /** Answer the recent narinfos' route 404, as a server from before it: hits go to the batches. */
    refuseRecent?: boolean;
    /** Answer the narinfo stream's route 404, as a server from before it: batches go to the batch route. */
    refuseStream?: boolean;
    /** Forward a stream's body only once it has ended, as a reverse proxy buffering request bodies does. */
    holdStreamBodies?: boolean;
  } = {},
): Promise<{
  url: string;
  requests: string[];
  posted: { url: string; body: string }[];
  failed: number;
  close(): Promise<void>;
}> {
  const requests: string[] = [];
  const posted: { url: string; body: string }[] = [];
  const state = { failed: 0 };
  const targetUrl = new URL(target);
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.method === 'POST') {
      const entry = { url: req.url ?? '', body: '' };
      posted.push(entry);
      req.on('data', (chunk: Buffer) => (entry.body += chunk.toString('utf8')));
    }
    if (
      (options.refuseSet && req.url === NARINFO_SET_PATH) ||
      (options.refuseRecent && req.url === RECENT_NARINFOS_PATH) ||
      (options.refuseStream && req.url === NARINFO_STREAM_PATH)
    ) {
      req.resume();
      res.writeHead(404).end('no such endpoint');
      return;
    }
    if (
      (options.failWhen?.(req.method ?? '', req.url ?? '') ?? true) &&
      state.failed < (options.failures ?? 0)
    ) {
      state.failed++;
      req.resume();
      res
        .writeHead(options.status ?? 503, options.retryAfter ? { 'retry-after': options.retryAfter } : {})
        .end('busy');
      return;
    }
    const forward = httpRequest(
      {
        host: targetUrl.hostname,
        port: targetUrl.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upstream) => {
        res.writeHead(upstream.statusCode ?? 502, upstream.headers);
        upstream.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    if (options.holdStreamBodies && req.url === NARINFO_STREAM_PATH) {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => forward.end(Buffer.concat(chunks)));
      req.on('close', () => forward.destroy());
    } else req.pipe(forward);
  });
  const url = await listen(server);
  return {
    url,
    requests,
    posted,
    get failed() {
      return state.failed;
    },
    close: closer(server),
  };
}

/** The hash parts a front saw the daemon ask the server for: in batch lookups and stream lines. */
export function askedHashParts(front: { posted: { url: string; body: string }[] }): string[] {
  return front.posted
    .filter((post) => post.url === NARINFO_BATCH_PATH || post.url === NARINFO_STREAM_PATH)
    .flatMap((post) => post.body.split('\n').filter(Boolean))
    .flatMap((line) => (JSON.parse(line) as { hashParts?: string[] }).hashParts ?? []);
}
