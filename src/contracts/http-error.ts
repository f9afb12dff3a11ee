/**
 * The one error type that carries an HTTP status, shared by the server and the proxy.
 * Handlers throw it; the router turns it into a response whose body names the problem.
 */
import type { ServerResponse } from 'node:http';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** A short machine-readable reason, for metrics labels (`rejected_uploads{reason=…}`). */
    readonly reason = 'error',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * Answers with the error's status and a plain-text message. When headers were already sent the
 * response cannot change status any more, so it is destroyed instead.
 */
export function sendError(res: ServerResponse, error: unknown): void {
  const status = error instanceof HttpError ? error.status : 500;
  const message = error instanceof HttpError ? error.message : 'internal server error';
  if (res.headersSent) {
    res.destroy(error instanceof Error ? error : undefined);
    return;
  }
  const body = `${message}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...(error instanceof HttpError ? error.headers : {}),
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
