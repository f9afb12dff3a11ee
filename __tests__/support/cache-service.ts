/**
 * A stand-in for GitHub's Actions cache service (v2: Twirp JSON at
 * `${ACTIONS_RESULTS_URL}twirp/github.actions.results.api.v1.CacheService/`), with the rules that
 * matter to Sluice: entries are scoped by the ref of the job that made them; a job reads its own
 * ref's, its base ref's and the default branch's and writes only its own; a key + version is
 * created once (409 `already_exists`); at most 200 new entries per minute per repository (429);
 * the bytes go to Azure Blob Storage (the real Azurite) through signed URLs. Every call is counted
 * per runtime token, i.e. per job.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { BlobSASPermissions, generateBlobSASQueryParameters } from '@azure/storage-blob';
import type { Azurite } from './azurite.js';

const PREFIX = '/twirp/github.actions.results.api.v1.CacheService/';
const CONTAINER = 'actions-cache';
export const NEW_ENTRIES_PER_MINUTE = 200;

export interface Scope {
  /** The ref the job runs on: where its saves land. */
  ref: string;
  /** Refs it may read besides its own, in order (base branch, default branch). */
  readRefs: string[];
}

interface Entry {
  key: string;
  version: string;
  ref: string;
  blob: string;
  size?: number;
  createdAt: number;
  finalized: boolean;
}

export interface Call {
  method: string;
  token: string;
  status: number;
}

export type CacheMethod = 'CreateCacheEntry' | 'FinalizeCacheEntryUpload' | 'GetCacheEntryDownloadURL';

export interface CacheService {
  /** ACTIONS_RESULTS_URL (with its trailing slash). */
  url: string;
  calls: Call[];
  entries: Entry[];
  /** A runtime token for a job on `scope`. */
  tokenFor(scope: Scope): string;
  callsOf(token: string): Call[];
  /** Answers `method` with `status` from now on (until `heal()`). */
  fail(method: CacheMethod, status: number): void;
  heal(): void;
  /** The entry's blob, as bytes; and a way to replace them. */
  readBlob(entry: Entry): Promise<Buffer>;
  writeBlob(entry: Entry, bytes: Buffer): Promise<void>;
  close(): Promise<void>;
}

function twirpError(res: ServerResponse, status: number, code: string, msg: string): void {
  const body = JSON.stringify({ code, msg });
  res.writeHead(status, {
    'content-type': 'application/json',
    ...(status === 429 ? { 'retry-after': '60' } : {}),
  });
  res.end(body);
}

export async function startCacheService(
  azurite: Azurite,
  now: () => number = Date.now,
): Promise<CacheService> {
  const container = azurite.service.getContainerClient(CONTAINER);
  await container.createIfNotExists();
  const tokens = new Map<string, Scope>();
  const entries: Entry[] = [];
  const calls: Call[] = [];
  const failures = new Map<string, number>();

  const signed = (blob: string, permissions: string): string => {
    const sas = generateBlobSASQueryParameters(
      {
        containerName: CONTAINER,
        blobName: blob,
        permissions: BlobSASPermissions.parse(permissions),
        expiresOn: new Date(Date.now() + 3600_000),
      },
      azurite.credential,
    );
    return `${azurite.url}/${CONTAINER}/${blob}?${sas.toString()}`;
  };

  const handlers: Record<
    CacheMethod,
    (scope: Scope, body: Record<string, unknown>, res: ServerResponse) => void
  > = {
    CreateCacheEntry(scope, body, res) {
      const key = String(body.key ?? '');
      const version = String(body.version ?? '');
      if (!key || !version) return twirpError(res, 400, 'invalid_argument', 'key and version are required');
      if (entries.some((e) => e.key === key && e.version === version && e.ref === scope.ref))
        return twirpError(
          res,
          409,
          'already_exists',
          'cache entry with the same key, version, and scope already exists',
        );
      const recent = entries.filter((e) => e.createdAt > now() - 60_000).length;
      if (recent >= NEW_ENTRIES_PER_MINUTE)
        return twirpError(
          res,
          429,
          'resource_exhausted',
          'too many cache entries created in the last minute',
        );
      const entry: Entry = {
        key,
        version,
        ref: scope.ref,
        blob: randomUUID(),
        createdAt: now(),
        finalized: false,
      };
      entries.push(entry);
      send(res, { ok: true, signed_upload_url: signed(entry.blob, 'cw') });
    },
    FinalizeCacheEntryUpload(scope, body, res) {
      const entry = entries.find(
        (e) => e.key === body.key && e.version === body.version && e.ref === scope.ref && !e.finalized,
      );
      if (!entry) return twirpError(res, 404, 'not_found', 'no cache entry being uploaded with that key');
      entry.finalized = true;
      entry.size = Number(body.size_bytes);
      send(res, { ok: true, entry_id: String(entries.indexOf(entry) + 1) });
    },
    GetCacheEntryDownloadURL(scope, body, res) {
      const key = String(body.key ?? '');
      const restoreKeys = Array.isArray(body.restore_keys) ? body.restore_keys.map(String) : [];
      const usable = (e: Entry, ref: string) => e.finalized && e.version === body.version && e.ref === ref;
      for (const ref of [scope.ref, ...scope.readRefs]) {
        const exact = entries.find((e) => usable(e, ref) && e.key === key);
        if (exact)
          return send(res, {
            ok: true,
            signed_download_url: signed(exact.blob, 'r'),
            matched_key: exact.key,
          });
        for (const prefix of restoreKeys) {
          const newest = entries
            .filter((e) => usable(e, ref) && e.key.startsWith(prefix))
            .sort((a, b) => b.createdAt - a.createdAt || entries.indexOf(b) - entries.indexOf(a))[0];
          if (newest)
            return send(res, {
              ok: true,
              signed_download_url: signed(newest.blob, 'r'),
              matched_key: newest.key,
            });
        }
      }
      send(res, { ok: false });
    },
  };

  function send(res: ServerResponse, body: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
    const method = (req.url ?? '').startsWith(PREFIX) ? (req.url ?? '').slice(PREFIX.length) : '';
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    const record = (status: number) => calls.push({ method, token, status });
    const scope = tokens.get(token);
    if (req.method !== 'POST' || !(method in handlers)) {
      record(404);
      return twirpError(res, 404, 'bad_route', `no such method ${req.method} ${req.url}`);
    }
    if (!scope) {
      record(401);
      return twirpError(res, 401, 'unauthenticated', 'unknown runtime token');
    }
    const failure = failures.get(method);
    if (failure) {
      record(failure);
      return twirpError(
        res,
        failure,
        failure === 429 ? 'resource_exhausted' : 'internal',
        `injected HTTP ${failure}`,
      );
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      record(400);
      return twirpError(res, 400, 'malformed', 'body is not JSON');
    }
    handlers[method as CacheMethod](scope, body, res);
    record(res.statusCode);
  };
  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/`,
    calls,
    entries,
    tokenFor(scope) {
      const token = `runtime-${randomUUID()}`;
      tokens.set(token, scope);
      return token;
    },
    callsOf: (token) => calls.filter((c) => c.token === token),
    fail: (method, status) => void failures.set(method, status),
    heal: () => failures.clear(),
    readBlob: async (entry) => container.getBlockBlobClient(entry.blob).downloadToBuffer(),
    writeBlob: async (entry, bytes) =>
      void (await container.getBlockBlobClient(entry.blob).uploadData(bytes)),
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
