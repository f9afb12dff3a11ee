/**
 * Request bodies: size limits checked from Content-Length before reading, and again while reading;
 * a body that goes quiet is abandoned rather than held open (a slow-loris upload keeps a
 * decompressor and an upload slot for as long as it is allowed to).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../../contracts/http-error.js';

/** Refuses a declared Content-Length over `limit` before any of the body is read. */
export function checkDeclaredLength(req: IncomingMessage, limit: number, what: string): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    throw new HttpError(
      413,
      `${what} of ${declared} bytes is larger than the limit of ${limit} bytes`,
      'too_large',
    );
  }
}

/** Tells a client waiting on `Expect: 100-continue` to send the body: every check before it passed. */
export function acceptBody(req: IncomingMessage, res: ServerResponse): void {
  if (/100-continue/i.test(req.headers.expect ?? '')) res.writeContinue();
}

/** What `readSmallBody` reads: the request, and its body with the idle timeout (router.ts). */
export interface SmallBodySource {
  req: IncomingMessage;
  body(): AsyncIterable<Buffer>;
  /** How long the body may send nothing before it is abandoned (408). */
  bodyIdleTimeoutMs: number;
}

/**
 * A body of at most `limit` bytes, whole: one of declared length within the limit read as it comes,
 * any other through `body()`, counted against the limit while read.
 */
export async function readSmallBody(source: SmallBodySource, limit: number, what: string): Promise<Buffer> {
  const declared = source.req.headers['content-length'];
  if (declared !== undefined && Number(declared) <= limit)
    return readDeclaredBody(source.req, source.bodyIdleTimeoutMs);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source.body()) {
    size += chunk.length;
    if (size > limit)
      throw new HttpError(413, `${what} is larger than the limit of ${limit} bytes`, 'too_large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * A body whose Content-Length is within the limit (Node's parser holds it to that length), read
 * with the request's own events and one idle timer rather than an async iterator with a timer per
 * chunk: most bodies are the proxy's batch lookups, ~300 bytes, and that was ~10% of the server's
 * CPU for each. Ends as `withIdleTimeout` does: 408 after `idleMs` of silence, the request left as
 * it is so that the 408 can still be sent.
 */
function readDeclaredBody(req: IncomingMessage, idleMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const settle = (error?: unknown) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', settle).off('error', settle).off('close', onClose);
      if (error) reject(error);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const timer = setTimeout(() => settle(idleBodyError(idleMs)), idleMs);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      timer.refresh();
    };
    const onClose = () =>
      settle(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    req.on('data', onData).on('end', settle).on('error', settle).on('close', onClose);
  });
}

function idleBodyError(idleMs: number): HttpError {
  return new HttpError(
    408,
    `the request body sent nothing for ${idleMs / 1000} s (body_idle_timeout): abandoned`,
    'idle_body',
  );
}

/**
 * `source`, failing with 408 when a chunk takes longer than `idleMs` to arrive. Only the wait for
 * the client counts: while the consumer is busy (writing to storage, decompressing) nothing is
 * asked for and no timer runs. After a timeout the request is left as it is, so that the 408 can
 * still be sent on its connection (which the router then closes).
 */
export function withIdleTimeout(source: AsyncIterable<Buffer>, idleMs: number): AsyncIterable<Buffer> {
  return {
    [Symbol.asyncIterator]() {
      const inner = source[Symbol.asyncIterator]();
      let timedOut = false;
      return {
        next() {
          const next = inner.next();
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<never>((_resolve, reject) => {
            timer = setTimeout(() => {
              timedOut = true;
              // The chunk asked for may still come, or the connection fail: neither matters now.
              next.catch(() => undefined);
              reject(idleBodyError(idleMs));
            }, idleMs);
          });
          return Promise.race([next, timeout]).finally(() => clearTimeout(timer));
        },
        return(value?: unknown) {
          // Ending the inner iterator destroys the request, and with it the socket the 408 needs.
          if (timedOut) return Promise.resolve({ done: true as const, value: undefined });
          return inner.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined });
        },
      };
    },
  };
}
