/** The daemon's HTTP server: loopback only, routing to the cache routes or the control endpoints. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CONTROL_PREFIX } from '../../contracts/control-api.js';
import { HttpError, sendError } from '../../contracts/http-error.js';
import { handleControl, type ControlContext } from './control-routes.js';
import type { RequestGate } from './request-gate.js';
import type { Logger } from '../report/daemon-log.js';
import type { CacheRoutes } from '../pull/nix-routes.js';

/** The cache routes Nix talks to: the server's (CacheRoutes) or a restored pack's. */
export type NixRoutes = Pick<CacheRoutes, 'handle'>;

export interface ProxyServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/**
 * The path of a request target without its query. No URL object per request (a lookup costs a few
 * tens of µs in all): routes match exact paths, so a target that is not a plain path matches none.
 */
export function requestPath(target = '/'): string {
  const query = target.indexOf('?');
  return query === -1 ? target : target.slice(0, query);
}

export async function startProxyServer(
  host: string,
  port: number,
  routes: NixRoutes,
  control: ControlContext,
  gate: RequestGate,
  log: Logger,
): Promise<ProxyServer> {
  let refusals = 0;
  const failed = (req: IncomingMessage, res: ServerResponse, pathname: string, e: unknown): void => {
    if (e instanceof HttpError && e.status === 401) {
      // A few lines say someone tried; a flood of attempts cannot flood the log.
      if (++refusals <= 20) log.warn({ method: req.method, err: e.message }, 'refused a request');
    } else if (!(e instanceof HttpError))
      log.error({ err: (e as Error).message, path: pathname }, 'request failed');
    sendError(res, e);
  };
  const notServed = (pathname: string) => new HttpError(404, `${pathname} is not served here`, 'not_found');
  /** Synchronous as far as the routes are: a lookup answered from memory costs no promise. */
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const target = requestPath(req.url);
    // Until the request is authenticated its path is only the caller's word: logs never show it.
    let pathname = '(unauthenticated)';
    try {
      if (target.startsWith(CONTROL_PREFIX)) {
        gate.checkControl(req);
        pathname = target;
        handleControl(req, res, target, control).catch((e: unknown) => failed(req, res, target, e));
        return;
      }
      pathname = gate.cachePath(target);
      const handled = routes.handle(req, res, pathname);
      if (handled === true) return;
      if (handled === false) throw notServed(pathname);
      const cachePath = pathname;
      handled.then(
        (served) => {
          if (!served) failed(req, res, cachePath, notServed(cachePath));
        },
        (e: unknown) => failed(req, res, cachePath, e),
      );
    } catch (e) {
      failed(req, res, pathname, e);
    }
  };
  const server = createServer({ keepAliveTimeout: 60_000 }, handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
