/**
 * Request dispatch: path → route (paths.ts), method → handler, errors → a status and a message.
 * Every request is counted by route and status and logged from a fixed list of fields (narinfo
 * lookups answered 200 or 404 at debug level).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, sendError } from '../../contracts/http-error.js';
import type { Logger } from '../server-log.js';
import type { ServerMetrics } from '../metrics.js';
import { resolveAccess, type Access, type GrantVerifier, type TokenVerifier } from './auth.js';
import { narReadRequest, postNarLinks, type NarLinkDeps } from './nar-links-handler.js';
import type { NarLinkSigner } from '../cache/nar-link-signer.js';
import {
  getNar,
  getNarInfo,
  getNixCacheInfo,
  putNar,
  putNarByNarHash,
  putNarInfo,
  putNixCacheInfo,
  type CacheRequest,
} from './cache-handlers.js';
import { acceptBody, withIdleTimeout } from './body.js';
import type { UploadSlots } from './upload-slots.js';
import { getRecentNarInfos, postNarInfos } from './narinfo-batch-handler.js';
import { getNarInfoSet } from './narinfo-set-handler.js';
import { streamNarInfos } from './narinfo-stream-handler.js';
import type { CacheService } from '../cache/cache-service.js';
import { matchRoute, type Route } from './paths.js';
import { postPathBatch } from './path-batch-handler.js';
import { postPin } from './pins.js';
import type { RequestGuard } from './rate-limit.js';
import { StorageFullError, StorageUnavailableError } from '../storage/unavailable.js';

export type RawHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export interface RouterDeps {
  cache: CacheService;
  metrics: ServerMetrics;
  log: Logger;
  verifyToken: TokenVerifier;
  /** Checks the grant of a signed NAR link (expiry, revocation) as its token would be. */
  verifyGrant: GrantVerifier;
  narLinkSigner: NarLinkSigner;
  isPublic: (slice: string) => boolean;
  /** Whether any slice is public (readable without a token). */
  publicReads: boolean;
  tokenHandler: RawHandler;
  health: () => object;
  uploadSlots: UploadSlots;
  /** Rate limits per client address (rate-limit.ts). */
  guard?: RequestGuard;
  /** How long a request body may send nothing before it is abandoned (408). */
  bodyIdleTimeoutMs: number;
}

type Handler = (route: Route, request: CacheRequest) => Promise<void> | void;
type MethodTable = Partial<Record<string, Handler>>;

function routeTable(deps: RouterDeps): Record<Route['name'], MethodTable> {
  const narinfo: Handler = (route, request) =>
    getNarInfo(deps.cache, request, (route as { hashPart: string }).hashPart);
  const links: NarLinkDeps = {
    cache: deps.cache,
    signer: deps.narLinkSigner,
    verifyGrant: deps.verifyGrant,
    isPublic: deps.isPublic,
  };
  const nar: Handler = (route, request) => {
    const { key } = route as { key: string };
    return getNar(deps.cache, narReadRequest(links, request, key), key);
  };
  return {
    'nix-cache-info': {
      GET: (_route, request) => getNixCacheInfo(request),
      HEAD: (_route, request) => getNixCacheInfo(request),
      PUT: (_route, request) => putNixCacheInfo(request),
    },
    narinfo: {
      GET: narinfo,
      HEAD: narinfo,
      PUT: (route, request) => putNarInfo(deps.cache, request, (route as { hashPart: string }).hashPart),
    },
    nar: {
      GET: nar,
      HEAD: nar,
      PUT: (route, request) => putNar(deps, request, route as Extract<Route, { name: 'nar' }>),
    },
    narinfos: {
      POST: (_route, request) => postNarInfos(deps.cache, request, deps.publicReads),
    },
    'narinfo-stream': {
      POST: (_route, request) => streamNarInfos(deps.cache, request, deps.publicReads),
    },
    'recent-narinfos': {
      GET: (_route, request) => getRecentNarInfos(deps.cache, request, deps.publicReads),
    },
    'nar-links': {
      POST: (_route, request) => postNarLinks(links, request),
    },
    'narinfo-set': {
      GET: (_route, request) => getNarInfoSet(deps.cache, request, deps.publicReads),
    },
    pins: {
      POST: (_route, request) => postPin(deps.cache, request),
    },
    'path-batch': {
      POST: (_route, request) => postPathBatch(deps, request),
    },
    'nar-upload': {
      PUT: (route, request) =>
        putNarByNarHash(deps, request, route as Extract<Route, { name: 'nar-upload' }>),
    },
    health: {
      GET: (_route, { res }) => {
        const body = JSON.stringify(deps.health());
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      },
    },
    token: {
      POST: (_route, { req, res }) => {
        acceptBody(req, res);
        return deps.tokenHandler(req, res);
      },
    },
    metrics: {
      GET: async (_route, request) => {
        const { res } = request;
        const access = await request.access();
        // Per-slice series only for slices the request may read: anonymous scrapes see public ones.
        const body = await deps.metrics.text((slices) => deps.cache.readableSlices(access, slices));
        // Differs by token now: never kept by a shared cache for another caller.
        res.writeHead(200, {
          'content-type': deps.metrics.registry.contentType,
          'cache-control': 'private, no-store',
        });
        res.end(body);
      },
    },
  };
}

/** A narinfo (or nix-cache-info) read, alone or batched: Nix asks thousands per job. */
function isLookup(req: IncomingMessage, routeName: string): boolean {
  if (['narinfos', 'narinfo-set', 'recent-narinfos', 'narinfo-stream'].includes(routeName)) return true;
  return (
    (req.method === 'GET' || req.method === 'HEAD') &&
    (routeName === 'narinfo' || routeName === 'nix-cache-info')
  );
}

/** A request with a body: one we did not read must close the connection. */
function hasBody(req: IncomingMessage): boolean {
  return req.method === 'PUT' || req.method === 'POST';
}

export function createRouter(deps: RouterDeps): RawHandler {
  const table = routeTable(deps);
  return async (req, res) => {
    const started = performance.now();
    const path = (req.url ?? '/').split('?', 1)[0]?.slice(0, 200);
    let routeName = 'unknown';
    // 'close' rather than 'finish': a download the client abandons is counted and logged too.
    res.once('close', () => {
      const status = res.writableFinished ? res.statusCode : 499;
      deps.metrics.requests.inc({ route: routeName, method: req.method ?? '', status });
      // A lookup's log line cost as much CPU as the lookup: hits and misses go to debug (the
      // metrics count them all the same); errors and everything else stay at info.
      const level = isLookup(req, routeName) && (status === 200 || status === 404) ? 'debug' : 'info';
      if (deps.log.isLevelEnabled(level))
        deps.log[level](
          { method: req.method, path, route: routeName, status, ms: Math.round(performance.now() - started) },
          'request',
        );
    });
    try {
      const route = matchRoute(req.url ?? '/');
      routeName = route.name;
      deps.guard?.admit(req, route.name);
      const methods = table[route.name];
      const handler = methods[req.method ?? ''];
      if (!handler) {
        const allow = Object.keys(methods).join(', ');
        throw new HttpError(
          405,
          `${req.method} is not allowed on ${path} (allowed: ${allow})`,
          'bad_method',
          { allow },
        );
      }
      let access: Promise<Access> | undefined;
      const request: CacheRequest = {
        req,
        res,
        access: () => (access ??= resolveAccess(req, deps.verifyToken, deps.isPublic)),
        body: () => withIdleTimeout(req, deps.bodyIdleTimeoutMs),
        bodyIdleTimeoutMs: deps.bodyIdleTimeoutMs,
      };
      await handler(route, request);
    } catch (error) {
      if (error instanceof HttpError && error.status === 401) deps.guard?.refused(req, routeName);
      if (!(error instanceof HttpError)) deps.log.error({ err: error, path }, 'request failed');
      else if (error.status === 503) {
        const detail = error instanceof StorageUnavailableError ? { detail: error.detail } : {};
        deps.log.warn({ path, reason: error.message, ...detail }, 'unavailable');
      } else if (error instanceof StorageFullError) {
        deps.log.error({ path, reason: error.message, detail: error.detail }, 'storage full');
      } else if (hasBody(req) && !['token', 'narinfos', 'narinfo-stream', 'nar-links'].includes(routeName))
        deps.metrics.rejectedUploads.inc({ reason: error.reason });
      // A body we did not read would be parsed as the next request: close the connection instead.
      if (hasBody(req) && !req.complete && !res.headersSent) res.setHeader('connection', 'close');
      sendError(res, error);
    }
  };
}
