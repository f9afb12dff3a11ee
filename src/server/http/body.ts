/** Request bodies: size limits checked from Content-Length before reading, and again while reading. */
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

export async function readSmallBody(req: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit)
      throw new HttpError(413, `${what} is larger than the limit of ${limit} bytes`, 'too_large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
