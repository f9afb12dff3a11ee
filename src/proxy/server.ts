/** The daemon's HTTP server: loopback only, routing to the cache routes or the control endpoints. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpError, sendError } from '../http/errors.js';
import { handleControl, type ControlContext } from './control.js';
import type { Logger } from './log.js';
import type { CacheRoutes } from './routes.js';

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
  log: Logger,
): Promise<ProxyServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const pathname = requestPath(req.url);
    try {
      if (pathname.startsWith('/_sluice/')) await handleControl(req, res, pathname, control);
      else if (!(await routes.handle(req, res, pathname))) {
        throw new HttpError(404, `${pathname} is not served here`, 'not_found');
      }
    } catch (e) {
      if (!(e instanceof HttpError))
        log.error({ err: (e as Error).message, path: pathname }, 'request failed');
      sendError(res, e);
    }
  };
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => void handle(req, res));
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
